"""Benchmark: an incremental streams run after 1% of streams changed, against a full sweep.

Seeds N streams in a real PostgreSQL (the embedded server, its own data folder)
and in a devnet running in its own process with an injected latency per
request. Runs the `stream_incremental_discrepancies` asset twice through
Dagster: the first run has no watermark, so it sweeps every stream; then 1% of
the streams' rows change in the database (as the app would write them) and the
second run reads only those, the streams named in new contract events, and the
streams with open incidents. Prints both times and their ratio; with --write,
records them in BENCHMARKS.md with the command.

    python benchmarks/incremental_sweep.py --n 100000 --latency-ms 20 --write
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_env import QUIET, bench_resources, fresh_database  # noqa: E402 - a sibling module
from chain_sweep import BENCHMARKS_MD  # noqa: E402 - the sibling script's output file

from recon_demo import DEMO_SQL

DATABASE = "recon_bench_incremental"


def _serve_devnet(n: int, latency_s: float, reference: datetime, port_queue: mp.Queue, stop: mp.Event) -> None:
    """The devnet process: the streams world's chain side, served until stopped."""
    from recon_demo.worlds.streams import build_streams_world, load_streams_into_ledger
    from soroban_devnet.ledger import DevnetLedger, FaultConfig
    from soroban_devnet.server import DevnetServer

    # A million seeded entries: state only, no per-write history (the replay benchmark measures that).
    ledger = DevnetLedger(record_history=False)
    load_streams_into_ledger(ledger, build_streams_world(n, reference_time=reference))
    ledger.faults = FaultConfig(latency_s=latency_s, methods=frozenset({"getLedgerEntries"}))
    with DevnetServer(ledger) as server:
        port_queue.put(server.url)
        stop.wait()


def _timed_run(resources: dict[str, object]) -> tuple[float, dict[str, object]]:
    from reconciliation_pipeline.defs.streams.definitions import STREAMS

    started = time.perf_counter()
    result = dg.materialize(STREAMS.assets("incremental"), resources=resources, run_config=QUIET)
    elapsed = time.perf_counter() - started
    materialization = result.asset_materializations_for_node("stream_incremental_discrepancies")[0]
    return elapsed, {k: v.value for k, v in materialization.metadata.items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="streams (default 100000)")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="devnet latency per request (default 20)")
    parser.add_argument("--changed-share", type=float, default=0.01, help="share of streams changed (default 0.01)")
    parser.add_argument("--write", action="store_true", help="record the figures in BENCHMARKS.md")
    args = parser.parse_args()
    command = "python benchmarks/incremental_sweep.py " + " ".join(sys.argv[1:])

    from recon_demo.worlds.streams import build_streams_world, write_streams_to_db

    database_url, engine = fresh_database(DATABASE)
    reference = datetime.now(UTC)
    print(f"seeding {args.n} streams in PostgreSQL and in a devnet process ...", flush=True)
    write_streams_to_db(engine, build_streams_world(args.n, reference_time=reference))
    with engine.begin() as connection:
        connection.execute(DEMO_SQL.query("bench/age_streams.sql"))

    ctx = mp.get_context("spawn")
    port_queue: mp.Queue = ctx.Queue()
    stop = ctx.Event()
    devnet = ctx.Process(target=_serve_devnet, args=(args.n, args.latency_ms / 1000, reference, port_queue, stop),
                         daemon=True)
    devnet.start()
    rpc_url = port_queue.get(timeout=3600)
    try:
        resources = bench_resources(database_url, rpc_url)
        full_s, full = _timed_run(resources)
        print(f"  full sweep (no watermark): {full_s:.2f} s, {full['entities_checked']:,} streams checked", flush=True)
        every = max(1, round(1 / args.changed_share))
        with engine.begin() as connection:
            changed = connection.execute(DEMO_SQL.query("bench/touch_streams.sql"), {"every": every}).rowcount
        incremental_s, incremental = _timed_run(resources)
        print(f"  incremental after {changed:,} rows changed: {incremental_s:.2f} s, "
              f"{incremental['entities_checked']:,} streams checked", flush=True)
    finally:
        stop.set()
        devnet.join(timeout=30)
        engine.dispose()
    ratio = incremental_s / full_s
    print(f"the incremental run cost {ratio:.1%} of the full sweep (target: at most 10%)")
    if args.write:
        header = "| N streams | latency | changed | full sweep s | incremental s | incremental / full |"
        lines = BENCHMARKS_MD.read_text().splitlines()
        if header not in lines:
            lines += [
                "",
                "## Incremental streams runs (`benchmarks/incremental_sweep.py`)",
                "",
                "A full sweep (no watermark) against the next run after the app changed a share of the rows.",
                "",
                header,
                "|---|---|---|---|---|---|",
            ]
        lines += [
            f"| {args.n:,} | {args.latency_ms:g} ms | {changed:,} rows | {full_s:.2f} | {incremental_s:.2f} "
            f"| {ratio:.1%} |",
            f"<!-- {datetime.now(UTC):%Y-%m-%d}: `{command}` -->",
        ]
        BENCHMARKS_MD.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
