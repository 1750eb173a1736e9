"""Fault injection: RPC failure rates against what the reconciliation must still get right.

For each failure rate, a fresh database and devnet hold the streams world (its drift catalogue,
an escrow short of EURC) and the balances world. A clean run first opens the catalogue's
incidents; then `getLedgerEntries` fails at the given rate (seeded, every attempt drawn anew,
the default 3 attempts) and the streams nightly group and a full balances sweep run again.

Reported per rate and domain:
  read ok / error   entities whose entry was read, and those whose read failed (CHAIN_READ_ERROR);
  accounted         checked + unchecked entities = every entity in scope (a row or a chain-only key);
  false drift       findings of a class other than CHAIN_READ_ERROR that the catalogue does not call for;
  missed            catalogue findings absent although their entity was read;
  wrongly resolved  incidents of the clean run resolved by the faulty one while their drift is still there;
  escrow            the EURC shortfall incident's state after the faulty run (never `resolved`).

    python benchmarks/fault_injection.py --streams 2000 --users 2000 --write
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import pandas as pd
import sqlalchemy as sa
from bench_env import QUIET, bench_resources, fresh_database

from recon_demo.worlds.balances import build_balances_world, load_balances_into_ledger, write_balances_to_db
from recon_demo.worlds.streams import build_streams_world, load_streams_into_ledger, write_streams_to_db
from reconciliation_pipeline.core.watermarks import FULL_SWEEP, SWEEP_TAG
from reconciliation_pipeline.defs.balances.definitions import BALANCES
from reconciliation_pipeline.defs.streams.definitions import STREAMS
from soroban_devnet.ledger import DevnetLedger, FaultConfig
from soroban_devnet.server import DevnetServer

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
SECTION = "## Fault injection (`benchmarks/fault_injection.py`)"
HEADER = ("| failure rate | domain | entities | read ok | read error | accounted | false drift | missed | "
          "wrongly resolved | escrow (EURC) | run status |")
RATES = (0.0, 0.1, 0.25, 0.5)
INTRO = ("A clean run opens the drift catalogues' incidents, then getLedgerEntries fails at the rate shown "
         "(3 attempts per batch, seeded) for the streams nightly group and a full balances sweep. `accounted`: "
         "checked + unchecked covers every entity; `false drift`: findings (not CHAIN_READ_ERROR) the catalogue "
         "does not call for; `missed`: catalogue findings absent although their entity was read; "
         "`wrongly resolved`: incidents resolved while their drift is still there. `escrow (EURC)`: the shortfall "
         "incident after the faulty run: `confirmed` (seen again) or `open` (left as the clean run opened it: "
         "solvency not established), never `resolved`.")
FINDING_KEY = ["entity_type", "entity_id", "field", "drift_class", "severity", "db_value", "chain_value"]


@dataclass(frozen=True)
class Row:
    rate: float
    domain: str
    entities: int
    read_ok: int
    read_error: int
    accounted: bool
    false_drift: int
    missed: int
    wrongly_resolved: int
    escrow: str
    status: str

    def markdown(self) -> str:
        return (f"| {self.rate:.0%} | {self.domain} | {self.entities:,} | {self.read_ok:,} | {self.read_error:,} | "
                f"{'yes' if self.accounted else 'NO'} | {self.false_drift} | {self.missed} | {self.wrongly_resolved} | "
                f"{self.escrow} | {self.status} |")


def _keys(frame: pd.DataFrame) -> set[tuple]:
    rows = frame[FINDING_KEY].astype(object).where(frame[FINDING_KEY].notna(), None)
    return set(map(tuple, rows.itertuples(index=False)))


def _query(engine: sa.Engine, text: str, **params: object) -> pd.DataFrame:
    with engine.connect() as connection:
        return pd.read_sql(sa.text(text), connection, params=params)


def _count(metadata: dict[str, dg.MetadataValue], name: str) -> int:
    value = metadata[name].value
    assert isinstance(value, int), f"{name}: {value!r}"
    return value


def _measure(domain: str, rate: float, engine: sa.Engine, result: dg.ExecuteInProcessResult, chain_asset: str,
             expected: pd.DataFrame, before: pd.DataFrame, eurc: str | None) -> Row:
    # From the read's metadata, not the output's frame: a streaming sweep keeps only the rows its
    # findings are about.
    read = result.asset_materializations_for_node(chain_asset)[0].metadata
    read_ok = _count(read, "entries_ok") + _count(read, "entries_missing")
    read_error = _count(read, "entries_unreadable") + _count(read, "entries_not_read_time_limit")
    found = _query(engine, "SELECT * FROM recon.discrepancies WHERE run_id = :r", r=result.run_id)
    run = _query(engine, "SELECT * FROM recon.runs WHERE run_id = :r", r=result.run_id).iloc[0]
    unread = set(found.loc[found["drift_class"] == "CHAIN_READ_ERROR", "entity_id"])
    false_drift = _keys(found[found["drift_class"] != "CHAIN_READ_ERROR"]) - _keys(expected)
    missed = {k for k in _keys(expected) - _keys(found) if k[1] not in unread and k[3] != "CHAIN_READ_ERROR"}
    after = _query(engine, "SELECT entity_id, field, drift_class, state FROM recon.drift_incidents WHERE domain = :d",
                   d=domain).set_index(["entity_id", "field", "drift_class"])["state"]
    still_there = {(k[1], k[2], k[3]) for k in _keys(expected)}
    wrongly = [i for i in before.index if i in still_there and after.get(i) == "resolved"]
    escrow = "-"
    if eurc is not None:
        escrow = str(after.get((eurc, "escrow_balance", "INVARIANT_VIOLATION"), "absent"))
    entities = _count(read, "dagster/row_count") + (2 if eurc is not None else 0)  # plus the two escrow tokens
    accounted = int(run["entities_checked"]) + int(run["entities_unchecked"]) >= entities
    return Row(rate, domain, entities, read_ok, read_error, accounted, len(false_drift), len(missed), len(wrongly),
               escrow, str(run["status"]))


def run_rate(rate: float, n_streams: int, n_users: int) -> list[Row]:
    database_url, engine = fresh_database(f"recon_bench_faults_{int(rate * 100)}")
    now = datetime.now(UTC)
    streams_world = build_streams_world(n_streams, reference_time=now)
    balances_world = build_balances_world(n_users)
    write_streams_to_db(engine, streams_world)
    write_balances_to_db(engine, balances_world)
    ledger = DevnetLedger(ledger_close_seconds=math.inf)
    load_streams_into_ledger(ledger, streams_world)
    load_balances_into_ledger(ledger, balances_world)
    yesterday = (now - timedelta(days=1)).strftime("%Y-%m-%d")
    rows = []
    with DevnetServer(ledger) as devnet:
        resources = {**bench_resources(database_url, devnet.url)}

        def streams() -> dg.ExecuteInProcessResult:
            return dg.materialize(STREAMS.assets("nightly"), resources=resources, partition_key=yesterday,
                                  run_config=QUIET)

        def balances() -> dg.ExecuteInProcessResult:
            return dg.materialize(BALANCES.assets("frequent"), resources=resources, run_config=QUIET,
                                  tags={SWEEP_TAG: FULL_SWEEP})

        streams(), balances()
        before = _query(engine, "SELECT domain, entity_id, field, drift_class FROM recon.drift_incidents "
                                "WHERE state <> 'resolved'").set_index(["entity_id", "field", "drift_class"])
        ledger.faults = FaultConfig(failure_rate=rate, failure_seed=7, methods=frozenset({"getLedgerEntries"}))
        rows.append(_measure("streams", rate, engine, streams(), "chain_streams", streams_world.expected_findings(),
                             before[before["domain"] == "streams"], streams_world.identities.eurc_contract_id))
        rows.append(_measure("balances", rate, engine, balances(), "chain_usdc_balances",
                             balances_world.expected_findings(with_burst=False),
                             before[before["domain"] == "balances"], None))
    engine.dispose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--streams", type=int, default=2000)
    parser.add_argument("--users", type=int, default=2000)
    parser.add_argument("--write", action="store_true", help="append the figures to BENCHMARKS.md")
    args = parser.parse_args()
    rows = [row for rate in RATES for row in run_rate(rate, args.streams, args.users)]
    table = [HEADER, "|" + "---|" * (HEADER.count("|") - 1), *(r.markdown() for r in rows)]
    print("\n".join(table))
    if args.write:
        command = f"python benchmarks/fault_injection.py --streams {args.streams} --users {args.users} --write"
        block = "\n".join([*table, f"<!-- {datetime.now(UTC):%Y-%m-%d}: `{command}` -->"])
        BENCHMARKS_MD.write_text(with_table_in_section(BENCHMARKS_MD.read_text(), block))


def with_table_in_section(text: str, block: str) -> str:
    """`text` with `block` at the end of this benchmark's section (before the next one), the
    section added at the end if it is not there yet."""
    if SECTION not in text:
        text = text.rstrip("\n") + f"\n\n{SECTION}\n\n{INTRO}"
    following = text.find("\n## ", text.index(SECTION) + len(SECTION))
    if following < 0:
        return text.rstrip("\n") + "\n\n" + block + "\n"
    return text[:following].rstrip("\n") + "\n\n" + block + "\n\n" + text[following:].lstrip("\n")


if __name__ == "__main__":
    main()
