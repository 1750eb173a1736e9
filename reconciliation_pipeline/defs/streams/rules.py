"""What is truly streams-specific: escrow solvency.

For each token, the stream contract's own balance (its entry on the token's
Stellar Asset Contract, CONTRACTS.md §6) must be at least the sum of
`total - released` over streams that are active or paused. Owed amounts are
computed from the chain (authoritative) and, for comparison, from the database.
"""

from __future__ import annotations

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
    return pd.DataFrame(rows, dtype=object)


def owed_by_token(streams: pd.DataFrame) -> pd.Series:
    """Σ (total − released) per token over active and paused streams, exact."""
    owing = streams[streams["status"].isin(OWING_STATUSES)]
    unreleased = (owing["total"] - owing["released"]).astype(object)
    return unreleased.groupby(owing["token"]).sum().astype(object)


def escrow_solvency_frame(chain_streams: pd.DataFrame, db_streams: pd.DataFrame, balances: pd.DataFrame) -> pd.DataFrame:
    """One row per token: balance, what is owed per chain and per database, the shortfall."""
    decoded = decoded_rows(chain_streams)
    owed_chain = owed_by_token(decoded)
    owed_db = owed_by_token(db_streams)
    unreadable = chain_streams[chain_streams["read_status"] == READ_ERROR].merge(
        db_streams[["stream_id", "token"]], on="stream_id", how="left", suffixes=("_chain", "")
    )
    unreadable_counts = unreadable.groupby("token").size() if len(unreadable) else pd.Series(dtype=int)
    frame = balances.copy()
    frame["owed_on_chain"] = frame["token"].map(lambda t: int(owed_chain.get(t, 0))).astype(object)
    frame["owed_in_db"] = frame["token"].map(lambda t: int(owed_db.get(t, 0))).astype(object)
    frame["unreadable_streams"] = frame["token"].map(lambda t: int(unreadable_counts.get(t, 0)))
    readable = frame["read_status"] != READ_ERROR
    frame["surplus"] = None
    frame.loc[readable, "surplus"] = (frame.loc[readable, "balance"] - frame.loc[readable, "owed_on_chain"]).astype(object)
    frame["solvent"] = frame["surplus"].map(lambda s: None if s is None else s >= 0)
    return frame


def escrow_findings(solvency: pd.DataFrame) -> pd.DataFrame:
    """A CRITICAL INVARIANT_VIOLATION per token whose escrow cannot cover what it owes."""
    short = solvency[solvency["solvent"].map(lambda s: s is False)]
    details = short.apply(
        lambda r: {
            "holder": r["holder"],
            "balance": str(r["balance"]),
            "owed_on_chain": str(r["owed_on_chain"]),
            "owed_in_db": str(r["owed_in_db"]),
            "shortfall": str(-r["surplus"]),
            "unreadable_streams": int(r["unreadable_streams"]),
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
    bad = solvency[solvency["read_status"] == READ_ERROR]
    return findings_frame(
        entity_type=ESCROW_ENTITY_TYPE,
        entity_id=bad["token"].astype(object),
        entity_key=bad["token"].astype(object),
        field=ESCROW_FIELD,
        drift_class=DriftClass.CHAIN_READ_ERROR,
        severity=Severity.WARN,
        ledger_sequence=bad["ledger_sequence"],
        details=bad.apply(lambda r: {"error": r["read_error"], "raw_xdr": r["raw_xdr"], "ledger_key": r["ledger_key"]}, axis=1)
        if len(bad)
        else pd.Series([], dtype=object),
    )


def _solvency_check(solvency: pd.DataFrame) -> dg.AssetCheckResult:
    insolvent = solvency[solvency["solvent"].map(lambda s: s is False)]
    unknown = solvency[solvency["solvent"].isna()]
    return dg.AssetCheckResult(
        check_name="escrow_solvency",
        passed=insolvent.empty and unknown.empty,
        severity=dg.AssetCheckSeverity.ERROR,
        metadata={
            "insolvent_tokens": len(insolvent),
            "unreadable_balances": len(unknown),
            "shortfall": markdown_table(insolvent[["token", "balance", "owed_on_chain", "surplus"]],
                                        "Every escrow covers what it owes."),
        },
    )


def escrow_solvency(ctx: StepContext, inputs: DomainInputs) -> StepResult:
    """Reads the escrow's balance of every token the streams use and sets it against what they
    owe: findings for tokens it cannot cover or whose balance could not be read."""
    chain_streams = inputs.chains[STREAMS].frame
    db_streams = inputs.sources[STREAMS].frame
    tokens = sorted(set(decoded_rows(chain_streams)["token"]) | set(db_streams["token"]))
    tokens = [t for t in tokens if isinstance(t, str) and t.startswith("C")]
    with ctx.reader() as reader:
        balances = read_escrow_balances(reader, ctx.contracts.stream_contract_id, tokens)
    solvency = escrow_solvency_frame(chain_streams, db_streams, balances)
    readable = solvency[solvency["read_status"] != READ_ERROR]
    ledgers = [int(x) for x in solvency["ledger_sequence"].dropna()]
    result = AggregateResult(
        name="stream_escrow",
        frame=solvency,
        findings=concat_findings([escrow_findings(solvency), escrow_read_error_findings(solvency)]),
        checked=Checked.of(ESCROW_ENTITY_TYPE, readable["token"], unchecked=len(solvency) - len(readable)),
        ledger_sequence=max(ledgers, default=None),
        db_snapshot_at=inputs.sources[STREAMS].taken_at,
    )
    return StepResult(
        value=result,
        metadata={
            "tokens": len(solvency),
            "insolvent_tokens": int(solvency["solvent"].map(lambda s: s is False).sum()),
            "escrow": markdown_table(solvency[["token", "balance", "owed_on_chain", "owed_in_db", "surplus"]],
                                     "No tokens."),
        },
        checks=(_solvency_check(solvency),),
    )
