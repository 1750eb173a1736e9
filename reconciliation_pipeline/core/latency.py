"""Detection latency: from a chain change to the incident being opened and confirmed.

A finding about a chain entry carries the entry's `last_modified_ledger`: the
chain side last changed then, so the drift cannot be older. The incident
keeps that ledger from the first finding of its occurrence
(`chain_changed_ledger`); after persisting, the discrepancies step looks up the
close time of each such ledger not known yet (`getLedgers`, one request per
cluster of up to 200 consecutive ledgers, a bounded number per run) and stores
it as `chain_changed_at`. Ledgers already in `recon.ledgers` (the drift origins
read them moments before, `core.origins`) are not asked for again, and those
looked up here are added to it. The latency of an incident is `first_seen_at −
chain_changed_at` (opened) and `confirmed_at − chain_changed_at` (confirmed).
A change outside the RPC's retention, or a finding without a ledger (a
database-side invariant, a missing entry), has no known latency.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.engine import Engine

from reconciliation_pipeline.chain.history import call_with_retries
from reconciliation_pipeline.chain.reader import ChainReader, RpcReadError
from reconciliation_pipeline.core import sql

PAGE = 200
"""Most ledgers one getLedgers request returns."""
MAX_REQUESTS = 20
"""Most getLedgers requests per run: latency is a measurement, never worth holding a run up."""
MAX_INCIDENTS = 2000


@dataclass(frozen=True)
class ClosedLedger:
    hash: str
    closed_at: datetime


def ledger_close_times(reader: ChainReader, ledgers: list[int],
                       max_requests: int = MAX_REQUESTS) -> dict[int, ClosedLedger]:
    """The hash and close time of each ledger the RPC still serves; the others are left out."""
    wanted = sorted(set(ledgers))
    found: dict[int, ClosedLedger] = {}
    requests = 0
    index = 0
    while index < len(wanted) and requests < max_requests and not reader.past_deadline():
        start = wanted[index]
        last = max(s for s in wanted[index:] if s < start + PAGE)
        requests += 1
        try:
            page = call_with_retries(reader, "getLedgers",
                                     lambda: reader.server.get_ledgers(start_ledger=start, limit=last - start + 1))
        except RpcReadError:
            page = None  # out of retention or unreadable: these changes have no known time
        for info in page.ledgers if page is not None else ():
            found[info.sequence] = ClosedLedger(info.hash, datetime.fromtimestamp(int(info.ledger_close_time), UTC))
        index = next((i for i, s in enumerate(wanted) if s > last), len(wanted))
    return {ledger: found[ledger] for ledger in wanted if ledger in found}


def fill_chain_change_times(engine: Engine, reader: ChainReader, domain: str) -> int:
    """Set `chain_changed_at` on the domain's unresolved incidents whose ledger time is not known yet."""
    with engine.connect() as connection:
        ledgers = connection.execute(sql.query("recon/queries/latency_unknown_ledgers.sql"),
                                     {"domain": domain, "limit": MAX_INCIDENTS}).scalars().all()
        if not ledgers:
            return 0
        known = {int(row.ledger_sequence): row.closed_at for row in connection.execute(
            sql.query("recon/queries/ledgers_read.sql"), {"ledgers": [int(v) for v in ledgers]})}
    fetched = ledger_close_times(reader, [int(v) for v in ledgers if int(v) not in known])
    times = {**known, **{ledger: closed.closed_at for ledger, closed in fetched.items()}}
    if not times:
        return 0
    with engine.begin() as connection:
        if fetched:
            connection.execute(sql.query("recon/queries/ledgers_record.sql"), {
                "ledgers": list(fetched), "hashes": [c.hash for c in fetched.values()],
                "closed_ats": [c.closed_at for c in fetched.values()]})
        return connection.execute(sql.query("recon/queries/latency_set_change_times.sql"), {
            "domain": domain, "ledgers": list(times), "closed_at": list(times.values()),
        }).rowcount


@dataclass(frozen=True)
class RunLatency:
    """Detection latency of the incidents one run opened and confirmed (seconds), where known."""

    opened: int
    open_median_s: float | None
    open_max_s: float | None
    confirmed: int
    confirm_median_s: float | None
    confirm_max_s: float | None

    def as_metadata(self) -> dict[str, Any]:
        """Numbers only where known, so the UI's plots skip runs without a measurement."""
        values = {
            "latency/opened_with_known_change": self.opened,
            "latency/confirmed_with_known_change": self.confirmed,
            "latency/open_seconds_median": self.open_median_s,
            "latency/open_seconds_max": self.open_max_s,
            "latency/confirm_seconds_median": self.confirm_median_s,
            "latency/confirm_seconds_max": self.confirm_max_s,
        }
        return {key: round(value, 3) if isinstance(value, float) else value
                for key, value in values.items() if value is not None}


def run_latency(engine: Engine, domain: str, run_id: str) -> RunLatency:
    with engine.connect() as connection:
        row = connection.execute(sql.query("recon/queries/latency_of_run.sql"),
                                 {"domain": domain, "run_id": run_id}).mappings().one()

    def number(value: Any) -> float | None:
        return None if value is None else float(value)

    return RunLatency(
        opened=int(row["opened"]), open_median_s=number(row["open_median_s"]), open_max_s=number(row["open_max_s"]),
        confirmed=int(row["confirmed"]), confirm_median_s=number(row["confirm_median_s"]),
        confirm_max_s=number(row["confirm_max_s"]),
    )
