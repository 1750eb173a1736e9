"""The ledger history a run replayed, and what it found wrong in it.

Steps that read events beyond getEvents's window replay getLedgers metadata
(`chain.replay`). Each replay is recorded in `recon.ledger_replays` with the
problems it met (`recon.ledger_problems`): a ledger missing from the pages, a
broken hash chain, metadata that does not parse. The discrepancies step of the
same domain turns those into CHAIN_READ_ERROR findings on entity
`ledger_<sequence>` (CRITICAL for a broken chain: the history cannot be trusted)
whichever step replayed, so a backfill that replays a range in one run reports
its problems in each day's findings, and a ledger read again without a problem
resolves its incident.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from sqlalchemy.engine import Engine

from reconciliation_pipeline.chain.replay import BROKEN_CHAIN, WindowEvents
from reconciliation_pipeline.core import sql
from reconciliation_pipeline.core.drift import WHOLE_ENTITY, DriftClass, Severity
from reconciliation_pipeline.core.findings import empty_findings, findings_frame
from reconciliation_pipeline.core.results import Checked

LEDGER_ENTITY = "ledger"
PREVIOUS_HASH_FIELD = "previous_ledger_hash"


def record_replay(engine: Engine, domain: str, purpose: str, run_id: str, partition_keys: Sequence[str],
                  window: WindowEvents | None) -> None:
    """Record what a step replayed for these partitions (replacing an earlier run's record of them);
    `window` None or without a replay clears that record (the events came from getEvents)."""
    with engine.begin() as connection:
        if partition_keys:
            connection.execute(sql.query("recon/queries/replay_forget.sql"),
                               {"domain": domain, "purpose": purpose, "partition_keys": list(partition_keys)})
        if window is None or window.replay is None:
            return
        replayed = window.replay
        replay_id = connection.execute(sql.query("recon/queries/replay_record.sql"), {
            "domain": domain, "purpose": purpose, "run_id": run_id, "partition_keys": list(partition_keys),
            "start_ledger": replayed.start, "end_ledger": replayed.end, "source": window.source,
            "ledgers_read": replayed.ledgers, "bytes_read": replayed.bytes_read,
            "transactions": replayed.transactions, "transactions_decoded": replayed.decoded,
        }).scalar_one()
        if replayed.problems:
            connection.execute(sql.query("recon/queries/replay_problems_record.sql"), {
                "replay_id": replay_id, "ledgers": [p.ledger for p in replayed.problems],
                "kinds": [p.kind for p in replayed.problems], "counts": [p.ledgers for p in replayed.problems],
                "details": [p.detail for p in replayed.problems],
            })


def history_findings(engine: Engine, domain: str, run_id: str, partition_keys: Sequence[str]) -> tuple[
        pd.DataFrame, Checked]:
    """The run's ledger-history problems as findings, and the ledgers with open incidents it read again."""
    params = {"domain": domain, "run_id": run_id, "partition_keys": list(partition_keys)}
    with engine.connect() as connection:
        rows = pd.DataFrame(connection.execute(sql.query("recon/queries/history_problems.sql"), params).mappings().all(),
                            columns=["ledger_sequence", "kind", "ledgers", "detail", "purpose", "source"])
        read_again = connection.execute(sql.query("recon/queries/history_checked_ledgers.sql"), params).scalars().all()
    checked = Checked.of(LEDGER_ENTITY, pd.Series(read_again, dtype=object))
    if rows.empty:
        return empty_findings(), checked
    rows = rows.drop_duplicates(["ledger_sequence", "kind"]).reset_index(drop=True)
    broken = rows["kind"] == BROKEN_CHAIN
    sequences = rows["ledger_sequence"].astype("int64")
    found = findings_frame(
        entity_type=LEDGER_ENTITY, entity_id="ledger_" + sequences.astype(str), entity_key=sequences.astype(str),
        field=pd.Series(PREVIOUS_HASH_FIELD, index=rows.index).where(broken, WHOLE_ENTITY),
        drift_class=DriftClass.CHAIN_READ_ERROR,
        severity=pd.Series(Severity.CRITICAL.value, index=rows.index).where(broken, Severity.WARN.value),
        ledger_sequence=sequences.astype(object),
        details=pd.Series([{"reason": f"ledger history: {kind}", "kind": kind, "detail": detail, "ledgers": int(n),
                            "read_by": purpose, "source": source}
                           for kind, detail, n, purpose, source in zip(
                               rows["kind"], rows["detail"], rows["ledgers"], rows["purpose"], rows["source"],
                               strict=True)], index=rows.index, dtype=object),
    )
    return found, Checked.combine([checked, Checked.of(LEDGER_ENTITY, found["entity_id"])])
