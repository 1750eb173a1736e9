"""What is truly markets-specific: odds from liquidity, the winning outcome, a market contract's instance.

- Odds: both sides' odds come from `pool_odds` (CONTRACTS.md §3); a YES-odds gap
  above the threshold is a finding carrying both odds (raw liquidity
  differences are findings of their own, from the spec).
- Outcomes: where both sides say the market is resolved, a different winning
  outcome is CRITICAL (the market would pay out on the wrong side). Resolved
  on one side only is a status finding, from the spec.
- A market contract's instance storage holds its `Status` and `Outcome` (§4).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from stellar_sdk import xdr

from reconciliation_pipeline.chain.decode import DecodeError, as_u32, as_unit_enum, contract_data_value, symbol_text
from reconciliation_pipeline.core.amounts import is_exact_int
from reconciliation_pipeline.core.drift import DriftClass, Severity
from reconciliation_pipeline.core.findings import concat_findings, findings_frame
from reconciliation_pipeline.core.results import DomainInputs, ExtraFindings, StepContext
from reconciliation_pipeline.core.snapshots import decoded_rows

KEY = "market_id"
SOURCE = "markets"
POOLS = "market_pools"
CONTRACTS = "market_contracts"
MARKET_FIELDS = ("status", "winning_outcome")
MARKET_STATUSES = ("Open", "Closed", "Resolved")
RESOLVED = "resolved"
OUTCOME_NAMES = {0: "YES", 1: "NO"}
STATUS_KEY = "Status"
OUTCOME_KEY = "Outcome"
ODDS_FIELD = "odds"
OUTCOME_FIELD = "winning_outcome"
ODDS_SEVERITY = Severity.WARN
OUTCOME_SEVERITY = Severity.CRITICAL


# -- a market contract's instance ----------------------------------------------------


def _outcome(value: xdr.SCVal) -> int | None:
    """`Option<u32>`: Void -> None, U32(0 | 1) -> the outcome."""
    if value.type == xdr.SCValType.SCV_VOID:
        return None
    outcome = as_u32(value, "Outcome")
    if outcome not in OUTCOME_NAMES:
        raise DecodeError(f"Outcome: {outcome} is neither 0 (YES) nor 1 (NO)")
    return outcome


def decode_market_instance(entry_data_b64: str) -> dict[str, Any]:
    """A market contract's instance storage -> `status` (lower case) and `winning_outcome`.

    The instance map may hold other keys; `Status` must be there, `Outcome` may be
    absent before resolution (read as None, like `Void`). Decoded with the SDK's XDR
    classes: the fast path has no contract-instance shape, and there is one entry
    per market, not per trade.
    """
    value = contract_data_value(entry_data_b64)
    if value.type != xdr.SCValType.SCV_CONTRACT_INSTANCE or value.instance is None:
        raise DecodeError(f"expected a contract instance, got {value.type.name}")
    storage: dict[str, xdr.SCVal] = {}
    for entry in (value.instance.storage.sc_map if value.instance.storage is not None else []):
        if entry.key.type == xdr.SCValType.SCV_SYMBOL:
            storage[symbol_text(entry.key, "instance storage key")] = entry.val
    if STATUS_KEY not in storage:
        raise DecodeError(f"instance storage has no {STATUS_KEY} (keys: {sorted(storage)})")
    return {
        "status": as_unit_enum(storage[STATUS_KEY], MARKET_STATUSES, STATUS_KEY),
        "winning_outcome": _outcome(storage[OUTCOME_KEY]) if OUTCOME_KEY in storage else None,
    }


# -- odds --------------------------------------------------------------------------------


def _non_negative_ints(values: pd.Series) -> pd.Series:
    return values.map(lambda v: is_exact_int(v) and v >= 0).astype(bool)


def pool_odds(yes_liquidity: pd.Series, no_liquidity: pd.Series) -> pd.DataFrame:
    """`yes_odds = no / (yes + no)`, `no_odds = yes / (yes + no)`, aligned with the inputs.

    The one function both sides use. Constant-product pricing: the YES price is the
    NO side's share of the pool and the other way round, so the two odds sum to 1.
    Liquidity stays exact (Python ints, any i128); only the odds are floats: each is
    the exact ratio correctly rounded (Python's int / int), so their sum is 1 within
    one rounding step. Odds are NaN where they are undefined: a missing or negative
    side, or an empty pool (both sides zero).
    """
    yes = yes_liquidity.astype(object)
    no = no_liquidity.astype(object)
    usable = _non_negative_ints(yes) & _non_negative_ints(no)
    pool_size = (yes[usable] + no[usable]).astype(object)
    pool_size = pool_size[(pool_size > 0).astype(bool)]
    priced = pool_size.index
    # int / int is exact-then-rounded-once in Python: liquidity stays exact, only the odds are floats.
    yes_ratio, no_ratio = no[priced] / pool_size, yes[priced] / pool_size
    odds = pd.DataFrame({"yes_odds": np.nan, "no_odds": np.nan}, index=yes.index, dtype=float)
    odds.loc[priced, "yes_odds"] = yes_ratio.astype(float)
    odds.loc[priced, "no_odds"] = no_ratio.astype(float)
    return odds


def _odds_text(yes: pd.Series, no: pd.Series) -> pd.Series:
    return pd.Series([f"yes={y:.6f} no={n:.6f}" for y, n in zip(yes, no, strict=True)], index=yes.index, dtype=object)


def odds_findings(db: pd.DataFrame, pools: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """A finding per market whose YES odds differ by more than `threshold` (absolute)."""
    chain = decoded_rows(pools)[[KEY, "yes_liquidity", "no_liquidity", "ledger_sequence", "last_modified_ledger"]]
    both = db[[KEY, "yes_liquidity", "no_liquidity"]].merge(chain, on=KEY, suffixes=("_db", "_chain"))
    db_odds = pool_odds(both["yes_liquidity_db"], both["no_liquidity_db"])
    chain_odds = pool_odds(both["yes_liquidity_chain"], both["no_liquidity_chain"])
    gap = (chain_odds["yes_odds"] - db_odds["yes_odds"]).abs()
    hit = (gap > threshold).fillna(False).astype(bool)
    rows = both[hit]
    details = pd.Series(
        [
            {
                "db_odds": {"yes": dy, "no": dn},
                "chain_odds": {"yes": cy, "no": cn},
                "yes_odds_gap": g,
                "threshold": threshold,
                "last_modified_ledger": lm,
            }
            for dy, dn, cy, cn, g, lm in zip(
                db_odds.loc[hit, "yes_odds"], db_odds.loc[hit, "no_odds"], chain_odds.loc[hit, "yes_odds"],
                chain_odds.loc[hit, "no_odds"], gap[hit], rows["last_modified_ledger"], strict=True,
            )
        ],
        index=rows.index,
        dtype=object,
    )
    return findings_frame(
        entity_type="amm_pool",
        entity_id="market_" + rows[KEY].astype(str),
        entity_key=rows[KEY].astype(str),
        field=ODDS_FIELD,
        drift_class=DriftClass.VALUE_MISMATCH,
        severity=ODDS_SEVERITY,
        db_value=_odds_text(db_odds.loc[hit, "yes_odds"], db_odds.loc[hit, "no_odds"]),
        chain_value=_odds_text(chain_odds.loc[hit, "yes_odds"], chain_odds.loc[hit, "no_odds"]),
        ledger_sequence=rows["ledger_sequence"],
        details=details,
    )


# -- outcomes ----------------------------------------------------------------------------


def _outcome_text(values: pd.Series) -> pd.Series:
    return values.map(lambda v: None if v is None or v != v else str(int(v))).astype(object)


def outcome_findings(db: pd.DataFrame, contracts: pd.DataFrame) -> pd.DataFrame:
    """CRITICAL findings for markets resolved on both sides with different winning outcomes."""
    chain = decoded_rows(contracts)[[KEY, "status", OUTCOME_FIELD, "ledger_sequence", "last_modified_ledger"]]
    both = db[[KEY, "status", OUTCOME_FIELD]].merge(chain, on=KEY, suffixes=("_db", "_chain"))
    db_outcome = _outcome_text(both[OUTCOME_FIELD + "_db"])
    chain_outcome = _outcome_text(both[OUTCOME_FIELD + "_chain"])
    resolved_both = (both["status_db"] == RESOLVED) & (both["status_chain"] == RESOLVED)
    hit = (resolved_both & (db_outcome.fillna("none") != chain_outcome.fillna("none"))).astype(bool)
    rows = both[hit]
    names = {str(k): v for k, v in OUTCOME_NAMES.items()}
    details = pd.Series(
        [{"db_outcome": names.get(d), "chain_outcome": names.get(c), "last_modified_ledger": lm}
         for d, c, lm in zip(db_outcome[hit], chain_outcome[hit], rows["last_modified_ledger"], strict=True)],
        index=rows.index,
        dtype=object,
    )
    return findings_frame(
        entity_type="market",
        entity_id="market_" + rows[KEY].astype(str),
        entity_key=rows[KEY].astype(str),
        field=OUTCOME_FIELD,
        drift_class=DriftClass.VALUE_MISMATCH,
        severity=OUTCOME_SEVERITY,
        db_value=db_outcome[hit],
        chain_value=chain_outcome[hit],
        ledger_sequence=rows["ledger_sequence"],
        details=details,
    )


def odds_and_outcomes(ctx: StepContext, inputs: DomainInputs) -> ExtraFindings:
    """The markets' own comparisons, on the entries this run decoded."""
    db = inputs.sources[SOURCE].frame
    return ExtraFindings(findings=concat_findings([
        odds_findings(db, inputs.chains[POOLS].frame, ctx.settings.odds_threshold()),
        outcome_findings(db, inputs.chains[CONTRACTS].frame),
    ]))


def with_market_context(findings: pd.DataFrame, inputs: DomainInputs) -> pd.DataFrame:
    """Every finding's details name the market: its id, title and contract address."""
    db = inputs.sources[SOURCE].frame
    context = db.assign(_key=db[KEY].astype(str)).drop_duplicates("_key").set_index("_key")
    titles = findings["entity_key"].map(context["title"])
    contracts = findings["entity_key"].map(context["contract_address"])
    findings = findings.copy()
    findings["details"] = [
        {**details, "market_id": int(key), "title": title, "contract_address": contract}
        for details, key, title, contract in zip(findings["details"], findings["entity_key"], titles, contracts,
                                                 strict=True)
    ]
    return findings
