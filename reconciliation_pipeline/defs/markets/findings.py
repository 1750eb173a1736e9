"""The markets diff: generic spec diffs plus the two genuinely domain-specific comparisons.

- Odds: both sides' odds come from `odds.pool_odds`; a YES-odds gap above the
  threshold is a finding carrying both odds (raw liquidity differences are
  findings of their own, from the spec).
- Outcomes: where both sides say the market is resolved, a different winning
  outcome is CRITICAL (the market would pay out on the wrong side). Resolved
  on one side only is a status finding, from the spec.

Entities the run did not read before its time limit are left out of the diff
entirely: they are not checked, which is different from "missing on chain".
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from reconciliation_pipeline.chain.addresses import valid_address_mask
from reconciliation_pipeline.core.diff import address_findings, diff_snapshots, invariant_findings
from reconciliation_pipeline.core.drift import DriftClass, Severity
from reconciliation_pipeline.core.findings import concat_findings, findings_frame
from reconciliation_pipeline.core.run_budget import not_read_mask
from reconciliation_pipeline.core.snapshots import READ_ERROR, compared_scope, decoded_rows
from reconciliation_pipeline.defs.markets.odds import pool_odds
from reconciliation_pipeline.defs.markets.spec import (
    MARKET_SPEC,
    OUTCOME_NAMES,
    POOL_SPEC,
    RESOLVED,
    MarketRowInvariants,
    PoolInvariants,
    ResolutionInvariants,
)

KEY = POOL_SPEC.key_column
ODDS_FIELD = "odds"
OUTCOME_FIELD = "winning_outcome"
ODDS_SEVERITY = Severity.WARN
OUTCOME_SEVERITY = Severity.CRITICAL


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
        domain=POOL_SPEC.domain,
        entity_type=POOL_SPEC.entity_type,
        entity_id=POOL_SPEC.entity_ids(rows[KEY]),
        entity_key=rows[KEY].astype(str),
        field=ODDS_FIELD,
        drift_class=DriftClass.VALUE_MISMATCH,
        severity=ODDS_SEVERITY,
        db_value=_odds_text(db_odds.loc[hit, "yes_odds"], db_odds.loc[hit, "no_odds"]),
        chain_value=_odds_text(chain_odds.loc[hit, "yes_odds"], chain_odds.loc[hit, "no_odds"]),
        ledger_sequence=rows["ledger_sequence"],
        details=details,
    )


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
        domain=MARKET_SPEC.domain,
        entity_type=MARKET_SPEC.entity_type,
        entity_id=MARKET_SPEC.entity_ids(rows[KEY]),
        entity_key=rows[KEY].astype(str),
        field=OUTCOME_FIELD,
        drift_class=DriftClass.VALUE_MISMATCH,
        severity=OUTCOME_SEVERITY,
        db_value=db_outcome[hit],
        chain_value=chain_outcome[hit],
        ledger_sequence=rows["ledger_sequence"],
        details=details,
    )


def with_market_context(findings: pd.DataFrame, db: pd.DataFrame) -> pd.DataFrame:
    """Every finding's details name the market: its id, title and contract address."""
    if findings.empty:
        return findings
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


@dataclass(frozen=True)
class MarketsDiff:
    findings: pd.DataFrame
    checked: pd.DataFrame
    """(entity_type, entity_id) of every entity compared this run."""
    unchecked: int
    not_read: int
    """Entities left unread at the run's time limit (part of `unchecked`)."""


def _checked(spec_entity_type: str, ids: pd.Series) -> pd.DataFrame:
    return pd.DataFrame({"entity_type": spec_entity_type, "entity_id": ids.astype(object)})


def diff_markets(db: pd.DataFrame, pools: pd.DataFrame, contracts: pd.DataFrame, odds_threshold: float) -> MarketsDiff:
    """All markets findings of one run, and which entities it could check. A pool or a
    market whose entry was `unchanged` (an incremental run's skip) is neither."""
    db_pool_scope, pools = compared_scope(db, pools, KEY)
    db_market_scope, contracts = compared_scope(db, contracts, KEY)
    pools_unread = not_read_mask(pools)
    contracts_unread = not_read_mask(contracts)
    pools_read = pools[~pools_unread]
    contracts_read = contracts[~contracts_unread]
    db_pools = db_pool_scope[~db_pool_scope[KEY].isin(pools.loc[pools_unread, KEY])]
    valid_contract = valid_address_mask(db_market_scope["contract_address"])
    db_contracts = db_market_scope[valid_contract & ~db_market_scope[KEY].isin(contracts.loc[contracts_unread, KEY])]

    findings = concat_findings(
        [
            diff_snapshots(POOL_SPEC, db_pools, pools_read),
            odds_findings(db_pools, pools_read, odds_threshold),
            address_findings(MARKET_SPEC, db_market_scope)[0],
            diff_snapshots(MARKET_SPEC, db_contracts, contracts_read),
            outcome_findings(db_contracts, contracts_read),
            invariant_findings(MARKET_SPEC, MarketRowInvariants, db_market_scope, side="database",
                               severity=MARKET_SPEC.db_invariant_severity),
            invariant_findings(POOL_SPEC, PoolInvariants, decoded_rows(pools), side="chain",
                               severity=POOL_SPEC.chain_invariant_severity),
            invariant_findings(MARKET_SPEC, ResolutionInvariants, decoded_rows(contracts), side="chain",
                               severity=MARKET_SPEC.chain_invariant_severity),
        ]
    )
    pool_errors = pools_read["read_status"] == READ_ERROR
    contract_errors = contracts_read["read_status"] == READ_ERROR
    checked = pd.concat(
        [
            _checked(POOL_SPEC.entity_type, POOL_SPEC.entity_ids(
                db_pools[~db_pools[KEY].isin(pools_read.loc[pool_errors, KEY])][KEY])),
            _checked(MARKET_SPEC.entity_type, MARKET_SPEC.entity_ids(db_market_scope.loc[~valid_contract, KEY])),
            _checked(MARKET_SPEC.entity_type, MARKET_SPEC.entity_ids(
                db_contracts[~db_contracts[KEY].isin(contracts_read.loc[contract_errors, KEY])][KEY])),
        ],
        ignore_index=True,
    )
    not_read = int(pools_unread.sum() + contracts_unread.sum())
    return MarketsDiff(
        findings=with_market_context(findings, db),
        checked=checked,
        unchecked=not_read + int(pool_errors.sum() + contract_errors.sum()),
        not_read=not_read,
    )
