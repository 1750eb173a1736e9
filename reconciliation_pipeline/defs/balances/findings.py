"""The balances diff: the spec's generic diff, with USDC's own meaning of a missing entry.

Users whose wallet is not a valid address are INVALID_ADDRESS findings and are
never read. A G... holder without a USDC trustline is MISSING_ON_CHAIN on field
`trustline`. Holders the run did not read before its time limit are left out
entirely: not checked, which is different from any finding.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from reconciliation_pipeline.core.diff import address_findings, diff_snapshots, invariant_findings
from reconciliation_pipeline.core.drift import DriftClass
from reconciliation_pipeline.core.findings import concat_findings
from reconciliation_pipeline.core.run_budget import not_read_mask
from reconciliation_pipeline.core.snapshots import READ_ERROR, decoded_rows
from reconciliation_pipeline.defs.balances.chain import HOLDER_KIND_FIELD
from reconciliation_pipeline.defs.balances.spec import TRUSTLINE_FIELD, WALLET_FIELD, BalanceInvariants, balances_spec


@dataclass(frozen=True)
class BalancesDiff:
    findings: pd.DataFrame
    checked: pd.DataFrame
    """(entity_type, entity_id) of every user compared this run."""
    unchecked: int
    not_read: int
    """Holders left unread at the run's time limit (part of `unchecked`)."""


def _with_holder_context(findings: pd.DataFrame, db: pd.DataFrame, chain: pd.DataFrame, key: str) -> pd.DataFrame:
    """Details name the wallet and, where it was read, which kind of entry holds its USDC."""
    if findings.empty:
        return findings
    wallets = findings["entity_key"].map(db.assign(_key=db[key].astype(str)).set_index("_key")[WALLET_FIELD])
    reads = chain.assign(_key=chain[key].astype(str)).set_index("_key")
    kinds = findings["entity_key"].map(reads["holder_kind"])
    entries = findings["entity_key"].map(reads["balance_entry"])
    findings = findings.copy()
    findings["details"] = [
        {**details, "wallet_address": wallet,
         **({"holder_kind": kind} if isinstance(kind, str) else {}),
         **({"balance_entry": entry} if isinstance(entry, str) else {})}
        for details, wallet, kind, entry in zip(findings["details"], wallets, kinds, entries, strict=True)
    ]
    return findings


def diff_balances(db: pd.DataFrame, chain: pd.DataFrame, tolerance: int) -> BalancesDiff:
    """All balances findings of one run, and which users it could check. `db` carries each
    wallet's `holder_kind` (None for an invalid wallet)."""
    spec = balances_spec(tolerance)
    key = spec.key_column
    unread = not_read_mask(chain)
    chain_read = chain[~unread]
    valid = db[HOLDER_KIND_FIELD].notna().astype(bool)
    db_read = db[valid & ~db[key].isin(chain.loc[unread, key])]

    compared = diff_snapshots(spec, db_read, chain_read)
    missing = compared["drift_class"] == DriftClass.MISSING_ON_CHAIN.value
    compared.loc[missing, "field"] = TRUSTLINE_FIELD
    compared.loc[missing, "details"] = [
        {**d, "reason": "no USDC trustline: the account cannot hold USDC"} for d in compared.loc[missing, "details"]
    ]
    findings = concat_findings(
        [
            address_findings(spec, db[~valid])[0],  # diff_snapshots validates the rest itself
            compared,
            invariant_findings(spec, BalanceInvariants, db, side="database", severity=spec.db_invariant_severity),
            invariant_findings(spec, BalanceInvariants, decoded_rows(chain_read), side="chain",
                               severity=spec.chain_invariant_severity),
        ]
    )
    errors = chain_read["read_status"] == READ_ERROR
    readable = db_read[~db_read[key].isin(chain_read.loc[errors, key])]
    checked_keys = pd.concat([db.loc[~valid, key], readable[key]], ignore_index=True)
    checked = pd.DataFrame({"entity_type": spec.entity_type, "entity_id": spec.entity_ids(checked_keys)})
    not_read = int(unread.sum())
    return BalancesDiff(
        findings=_with_holder_context(findings, db, chain, key),
        checked=checked,
        unchecked=not_read + int(errors.sum()),
        not_read=not_read,
    )
