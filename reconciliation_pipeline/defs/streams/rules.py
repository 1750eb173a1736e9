"""What is truly streams-specific: escrow solvency.

For each token, the stream contract's own balance (its entry on the token's
Stellar Asset Contract, CONTRACTS.md §6) must be at least the sum of
`total - released` over streams that are active or paused. Owed amounts are
computed from the chain (authoritative) and, for comparison, from the database.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import dagster as dg
import pandas as pd

from reconciliation_pipeline.chain.decode import DecodeError
from reconciliation_pipeline.chain.keys import sac_balance_key
from reconciliation_pipeline.chain.layouts import SAC_BALANCE
from reconciliation_pipeline.chain.reader import ChainReader
from reconciliation_pipeline.core.drift import DriftClass, Severity
from reconciliation_pipeline.core.findings import concat_findings, findings_frame
from reconciliation_pipeline.core.metadata import markdown_table
from reconciliation_pipeline.core.results import AggregateResult, Checked, DomainInputs, StepContext, StepResult
from reconciliation_pipeline.core.snapshots import READ_ERROR, READ_MISSING, READ_OK, decoded_rows

ESCROW_ENTITY_TYPE = "escrow"
ESCROW_FIELD = "escrow_balance"
OWING_STATUSES = ("active", "paused")
"""Streams whose unreleased amount the escrow must still cover."""
STREAMS = "streams"
BALANCE_COLUMNS = ("token", "holder", "ledger_key", "balance", "read_status", "read_error", "raw_xdr",
                   "ledger_sequence")


def read_escrow_balances(reader: ChainReader, holder: str, tokens: list[str]) -> pd.DataFrame:
    """The holder's balance of each token. No entry on the SAC means it holds none (0)."""
    keys = {token: sac_balance_key(token, holder) for token in tokens}
    result = reader.get_entries(list(keys.values()))
    rows: list[dict[str, Any]] = []
    for token, key in keys.items():
        row: dict[str, Any] = {"token": token, "holder": holder, "ledger_key": key, "balance": None,
                               "read_error": None, "raw_xdr": None, "ledger_sequence": result.latest_ledger}
        fetched = result.entries.get(key)
        if fetched is not None:
            row.update(raw_xdr=fetched.data_xdr, ledger_sequence=fetched.read_at_ledger)
            try:
                row.update(balance=SAC_BALANCE.decode(fetched.data_xdr)["amount"], read_status=READ_OK)
            except DecodeError as error:
                row.update(read_status=READ_ERROR, read_error=f"undecodable balance entry: {error}")
        elif key in result.failed:
            row.update(read_status=READ_ERROR, read_error=f"read failed: {result.failed[key]}")
        else:
            row.update(read_status=READ_MISSING, balance=0)
        rows.append(row)
    return pd.DataFrame(rows, columns=list(BALANCE_COLUMNS), dtype=object)


def owed_by_token(streams: pd.DataFrame) -> pd.Series:
    """Σ (total − released) per token over active and paused streams, exact."""
    owing = streams[streams["status"].isin(OWING_STATUSES)]
    unreleased = (owing["total"] - owing["released"]).astype(object)
    return unreleased.groupby(owing["token"]).sum().astype(object)


def _add_to(totals: dict[str, int], per_token: pd.Series | Mapping[str, int]) -> None:
    for token, amount in per_token.items():
        totals[str(token)] = totals.get(str(token), 0) + int(amount)


@dataclass
class EscrowTotals:
    """What escrow solvency needs from the streams, as exact running sums: per token, what active
    and paused streams owe per chain and per database, and the streams the chain read could not
    decode or fetch. Added to chunk by chunk in a streaming sweep (rows of one key range on both
    sides at a time), or all at once from whole frames."""

    owed_on_chain: dict[str, int] = field(default_factory=dict)
    owed_in_db: dict[str, int] = field(default_factory=dict)
    unreadable: dict[str, int] = field(default_factory=dict)
    unattributed: int = 0
    """Unreadable entries the database does not know: they could belong to any token."""
    tokens: set[str] = field(default_factory=set)
    """Every token a decoded entry or a database row names."""

    def add(self, db_rows: pd.DataFrame, chain_rows: pd.DataFrame) -> None:
        decoded = decoded_rows(chain_rows)
        _add_to(self.owed_on_chain, owed_by_token(decoded))
        _add_to(self.owed_in_db, owed_by_token(db_rows))
        unreadable = chain_rows.loc[chain_rows["read_status"] == READ_ERROR, ["stream_id"]].merge(
            db_rows[["stream_id", "token"]], on="stream_id", how="left")
        attributed = unreadable["token"].dropna()
        _add_to(self.unreadable, attributed.groupby(attributed).size())
        self.unattributed += len(unreadable) - len(attributed)
        self.tokens |= {t for t in pd.concat([decoded["token"], db_rows["token"]]).unique() if isinstance(t, str)}

    def merge(self, other: EscrowTotals) -> None:
        for mine, theirs in ((self.owed_on_chain, other.owed_on_chain), (self.owed_in_db, other.owed_in_db),
                             (self.unreadable, other.unreadable)):
            _add_to(mine, theirs)
        self.unattributed += other.unattributed
        self.tokens |= other.tokens

    @classmethod
    def of(cls, chain_streams: pd.DataFrame, db_streams: pd.DataFrame) -> EscrowTotals:
        totals = cls()
        totals.add(db_streams, chain_streams)
        return totals


def escrow_solvency_frame(totals: EscrowTotals, balances: pd.DataFrame) -> pd.DataFrame:
    """One row per token: balance, what is owed per chain and per database, the shortfall.

    `solvent` is None (not established) when the balance is unreadable, or when some of the
    token's streams are and the streams that were read do not already exceed the balance: what
    was not read could only add to what is owed, so a partial sum proves a shortfall but never
    solvency. An unreadable entry has no token of its own: the database says whose it is; one
    the database does not know counts against every token.
    """
    frame = balances.copy()
    frame["owed_on_chain"] = pd.Series([totals.owed_on_chain.get(t, 0) for t in frame["token"]], index=frame.index,
                                       dtype=object)
    frame["owed_in_db"] = pd.Series([totals.owed_in_db.get(t, 0) for t in frame["token"]], index=frame.index,
                                    dtype=object)
    frame["unreadable_streams"] = pd.Series([totals.unreadable.get(t, 0) + totals.unattributed for t in frame["token"]],
                                            index=frame.index, dtype=object)
    readable = frame["read_status"] != READ_ERROR
    frame["surplus"] = pd.Series([None] * len(frame), index=frame.index, dtype=object)
    frame.loc[readable, "surplus"] = (frame.loc[readable, "balance"] - frame.loc[readable, "owed_on_chain"]).astype(object)
    complete = frame["unreadable_streams"] == 0
    frame["solvent"] = pd.Series(
        [None if surplus is None or (surplus >= 0 and not whole) else surplus >= 0
         for surplus, whole in zip(frame["surplus"], complete, strict=True)],
        index=frame.index, dtype=object)
    return frame


def insolvent_mask(solvency: pd.DataFrame) -> pd.Series:
    """Boolean mask of tokens whose shortfall is established (a bool dtype even when empty:
    an empty object mask would select columns)."""
    return solvency["solvent"].map(lambda s: s is False).astype(bool)


def escrow_findings(solvency: pd.DataFrame) -> pd.DataFrame:
    """A CRITICAL INVARIANT_VIOLATION per token whose escrow cannot cover what it owes."""
    short = solvency[insolvent_mask(solvency)]
    details = short.apply(
        lambda r: {
            "holder": r["holder"],
            "balance": str(r["balance"]),
            "owed_on_chain": str(r["owed_on_chain"]),
            "owed_in_db": str(r["owed_in_db"]),
            "shortfall": str(-r["surplus"]),
            "unreadable_streams": int(r["unreadable_streams"]),
            "shortfall_is_lower_bound": int(r["unreadable_streams"]) > 0,
            "delta_meaning": "contract balance minus what active and paused streams still owe",
        },
        axis=1,
    ) if len(short) else pd.Series([], dtype=object)
    return findings_frame(
        entity_type=ESCROW_ENTITY_TYPE,
        entity_id=short["token"].astype(object),
        entity_key=short["token"].astype(object),
        field=ESCROW_FIELD,
        drift_class=DriftClass.INVARIANT_VIOLATION,
        severity=Severity.CRITICAL,
        db_value=short["owed_in_db"].map(str),
        chain_value=short["balance"].map(str),
        delta=short["surplus"],
        ledger_sequence=short["ledger_sequence"],
        details=details,
    )


def escrow_read_error_findings(solvency: pd.DataFrame) -> pd.DataFrame:
    """A CHAIN_READ_ERROR per token whose solvency the run could not establish: its balance, or
    some of its streams, could not be read."""
    bad = solvency[solvency["solvent"].isna()]
    details = bad.apply(
        lambda r: {
            "error": r["read_error"] if r["read_status"] == READ_ERROR
            else f"solvency could not be established: {int(r['unreadable_streams'])} of the token's streams "
                 "could not be read, and the streams that were read do not exceed its balance",
            "unreadable_streams": int(r["unreadable_streams"]),
            "balance": None if r["balance"] is None else str(r["balance"]),
            "owed_by_streams_read": str(r["owed_on_chain"]),
            "raw_xdr": r["raw_xdr"] if r["read_status"] == READ_ERROR else None,
            "ledger_key": r["ledger_key"],
        },
        axis=1,
    ) if len(bad) else pd.Series([], dtype=object)
    return findings_frame(
        entity_type=ESCROW_ENTITY_TYPE,
        entity_id=bad["token"].astype(object),
        entity_key=bad["token"].astype(object),
        field=ESCROW_FIELD,
        drift_class=DriftClass.CHAIN_READ_ERROR,
        severity=Severity.WARN,
        ledger_sequence=bad["ledger_sequence"],
        details=details,
    )


def _solvency_check(solvency: pd.DataFrame) -> dg.AssetCheckResult:
    insolvent = solvency[insolvent_mask(solvency)]
    unknown = solvency[solvency["solvent"].isna()]
    return dg.AssetCheckResult(
        check_name="escrow_solvency",
        passed=insolvent.empty and unknown.empty,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "insolvent_tokens": len(insolvent),
            "solvency_not_established": len(unknown),
            "shortfall": markdown_table(insolvent[["token", "balance", "owed_on_chain", "surplus"]],
                                        "Every escrow covers what it owes."),
        },
    )


def escrow_solvency(ctx: StepContext, inputs: DomainInputs) -> StepResult:
    """Reads the escrow's balance of every token the streams use and sets it against what they
    owe: findings for tokens it cannot cover or whose balance could not be read."""
    totals = inputs.fold(STREAMS, "stream_escrow")
    if totals is None:
        totals = EscrowTotals.of(inputs.chains[STREAMS].frame, inputs.sources[STREAMS].frame)
    tokens = sorted(t for t in totals.tokens if t.startswith("C"))
    with ctx.reader() as reader:
        balances = read_escrow_balances(reader, ctx.contracts.stream_contract_id, tokens)
    solvency = escrow_solvency_frame(totals, balances)
    # A token whose solvency was not established is not checked: its open incident stays open.
    established = solvency[solvency["solvent"].notna()]
    ledgers = [int(x) for x in solvency["ledger_sequence"].dropna()]
    result = AggregateResult(
        name="stream_escrow",
        frame=solvency,
        findings=concat_findings([escrow_findings(solvency), escrow_read_error_findings(solvency)]),
        checked=Checked.of(ESCROW_ENTITY_TYPE, established["token"], unchecked=len(solvency) - len(established),
                           unchecked_ids=solvency.loc[solvency["solvent"].isna(), "token"]),
        ledger_sequence=max(ledgers, default=None),
        db_snapshot_at=inputs.sources[STREAMS].taken_at,
    )
    return StepResult(
        value=result,
        metadata={
            "tokens": len(solvency),
            "insolvent_tokens": int(insolvent_mask(solvency).sum()),
            "solvency_not_established": int(solvency["solvent"].isna().sum()),
            "escrow": markdown_table(solvency[["token", "balance", "owed_on_chain", "owed_in_db", "surplus"]],
                                     "No tokens."),
        },
        checks=(_solvency_check(solvency),),
    )
