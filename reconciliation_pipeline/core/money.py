"""Which findings are money, in which asset, and how much is at stake.

`db_value`/`chain_value` mix amounts, odds, addresses and statuses, and `delta`
is set for reputation scores and streak days as much as for stroops, so
summing it answers nothing. A domain spec therefore names its money fields
(`MoneyField`): the entity type and fields whose values are base units of an
asset, and where the asset comes from. The discrepancies step stamps every
finding on those fields with the asset (code and issuer for a classic asset,
the contract id of its Stellar Asset Contract or token), the decimals, and
`amount_at_stake = |delta|` exactly in base units when the finding has a delta.
Findings on any other field carry none of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import pandas as pd

from reconciliation_pipeline.core.findings import MONEY_COLUMNS

if TYPE_CHECKING:
    from reconciliation_pipeline.core.results import DomainInputs
    from reconciliation_pipeline.core.spec import DomainSpec
    from reconciliation_pipeline.resources import StellarContractsResource

SAC_DECIMALS = 7
"""Every Stellar Asset Contract (and so USDC) has 7 decimals (STELLAR.md)."""


@dataclass(frozen=True)
class UsdcAsset:
    """The app's USDC: `USDC_ASSET_CODE:USDC_ISSUER`, and its Stellar Asset Contract."""


@dataclass(frozen=True)
class TokenColumn:
    """The asset is the token contract held in a column of the entity's rows (a stream's `token`):
    the chain side's value where the entry was decoded, else the database's."""

    entity: str
    """The spec's entity (or source) name whose rows hold the column."""
    column: str


@dataclass(frozen=True)
class TokenIsEntity:
    """The finding's entity id is the token contract itself (an escrow per token)."""


AssetSource = UsdcAsset | TokenColumn | TokenIsEntity


@dataclass(frozen=True)
class MoneyField:
    """Findings on `fields` of `entity_type` are amounts of an asset, in base units."""

    entity_type: str
    fields: tuple[str, ...]
    asset: AssetSource
    decimals: int = SAC_DECIMALS

    def __post_init__(self) -> None:
        if not self.fields:
            raise ValueError(f"{self.entity_type}: a money field needs at least one field")
        if not 0 <= self.decimals <= 38:
            raise ValueError(f"{self.entity_type}: decimals must be within 0..38, got {self.decimals}")


def _token_by_key(spec: DomainSpec, inputs: DomainInputs, source: TokenColumn) -> pd.Series:
    """key (as text) -> token contract id, the chain side's first (it is authoritative)."""
    entity = spec.entity(source.entity)
    frames = []
    if source.entity in inputs.chains:
        frames.append(inputs.chains[source.entity].frame)
    if entity.source_name in inputs.sources:
        frames.append(inputs.sources[entity.source_name].frame)
    parts = [
        pd.Series(rows[source.column].to_numpy(), index=rows[entity.key].astype(str).to_numpy(), dtype=object)
        for rows in (frame[[entity.key, source.column]].dropna() for frame in frames if source.column in frame)
    ]
    if not parts:
        return pd.Series([], dtype=object)
    tokens = pd.concat(parts)
    return tokens[~tokens.index.duplicated(keep="first")]


def stamp_money(findings: pd.DataFrame, spec: DomainSpec, inputs: DomainInputs,
                contracts: StellarContractsResource) -> pd.DataFrame:
    """The findings with the money columns set on every finding about one of the spec's money fields."""
    if findings.empty or not spec.money:
        return findings
    usdc_contract = contracts.usdc_contract_id
    # Built as plain object arrays and assigned whole: a partial .loc assignment would let
    # pandas turn exact ints into floats.
    columns = {name: findings[name].astype(object).where(findings[name].notna(), None).to_numpy(copy=True)
               for name in MONEY_COLUMNS}
    for money in spec.money:
        hit = ((findings["entity_type"] == money.entity_type) & findings["field"].isin(money.fields)).to_numpy()
        if not hit.any():
            continue
        if isinstance(money.asset, UsdcAsset):
            contract = pd.Series(usdc_contract, index=findings.index[hit], dtype=object)
        elif isinstance(money.asset, TokenIsEntity):
            contract = findings.loc[hit, "entity_id"].astype(object)
        else:
            tokens = _token_by_key(spec, inputs, money.asset)
            contract = findings.loc[hit, "entity_key"].astype(str).map(tokens).astype(object)
        positions = pd.Index(findings.index).get_indexer(contract.index[contract.notna()])
        known = contract[contract.notna()].to_numpy()
        is_usdc = known == usdc_contract
        columns["asset_contract_id"][positions] = known
        columns["asset_code"][positions[is_usdc]] = contracts.usdc_code()
        columns["asset_issuer"][positions[is_usdc]] = contracts.usdc_issuer
        columns["asset_decimals"][positions] = money.decimals
        deltas = findings["delta"].to_numpy()[positions]
        columns["amount_at_stake"][positions] = [None if pd.isna(d) else abs(int(d)) for d in deltas]
    return findings.assign(**{name: pd.Series(values, index=findings.index, dtype=object)
                              for name, values in columns.items()})
