"""Benchmark: an incremental USDC balances run after 1% of holdings changed, against a full sweep.

The every-5-minutes run reads only the holders the USDC SAC's movement events
(CAP-67) name since the last run, users whose row changed and users with open
incidents. Seeds the balances world (N users, G... trustlines and C... SAC
balances) in a real PostgreSQL and in a devnet process with an injected
latency, runs the real balances assets through Dagster with nothing recorded
(a full sweep), then pays half of the 1% on chain (each payment emits its
event) and changes the other half in the database, and runs again. Prints both times and the ratio; with --write,
records them in BENCHMARKS.md with the command.

    python benchmarks/incremental_balances.py --n 100000 --latency-ms 20 --write
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from bench_env import QUIET, bench_resources, fresh_database  # noqa: E402 - a sibling module
from chain_sweep import BENCHMARKS_MD  # noqa: E402 - the sibling script's output file

from recon_demo import DEMO_SQL

DATABASE = "recon_bench_incremental_balances"
TOUCH_METHOD = "benchTouchHoldings"


def _serve_devnet(n: int, latency_s: float, port_queue: mp.Queue, stop: mp.Event) -> None:
    """The devnet process: the balances world's chain side, and a method by which the
    issuer pays one base unit to every `every`-th holder in a new ledger (each payment
    changes the holding and emits the USDC SAC's `mint` event, as on a protocol 23 network)."""
    import math

    from recon_demo.worlds.balances import build_balances_world, load_balances_into_ledger, mint_usdc
    from soroban_devnet.ledger import DevnetLedger, FaultConfig
    from soroban_devnet.server import DevnetServer

    # A million seeded entries: state only, no per-write history (the replay benchmark measures that).
    ledger = DevnetLedger(ledger_close_seconds=math.inf, record_history=False)
    world = build_balances_world(n)
    load_balances_into_ledger(ledger, world)
    holdings = [*zip(world.trustlines["account"], world.trustlines["balance"], strict=True),
                *zip(world.sac_balances["holder"], world.sac_balances["amount"], strict=True)]

    def touch(params: dict[str, Any]) -> dict[str, int]:
        ledger.close_ledger()
        touched = holdings[::int(params["every"])]
        for holder, balance in touched:
            mint_usdc(ledger, world.identities, holder, int(balance) + 1, 1)
        ledger.close_ledger()
        return {"touched": len(touched)}

    ledger.register_method(TOUCH_METHOD, touch)
    ledger.faults = FaultConfig(latency_s=latency_s, methods=frozenset({"getLedgerEntries"}))
    with DevnetServer(ledger) as server:
        port_queue.put(server.url)
        stop.wait()


def _timed_run(resources: dict[str, object]) -> tuple[float, dict[str, object]]:
    from reconciliation_pipeline.defs.balances.definitions import BALANCES

    started = time.perf_counter()
    result = dg.materialize(BALANCES.assets("frequent"), resources=resources, run_config=QUIET)
    elapsed = time.perf_counter() - started
    metadata: dict[str, object] = {}
    for asset in ("usdc_movements", "chain_usdc_balances", "usdc_balance_discrepancies"):
        materialization = result.asset_materializations_for_node(asset)[0]
        metadata.update({k: v.value for k, v in materialization.metadata.items()})
    return elapsed, metadata


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="users (default 100000)")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="devnet latency per request (default 20)")
    parser.add_argument("--changed-share", type=float, default=0.01, help="share of holdings changed (default 0.01)")
    parser.add_argument("--write", action="store_true", help="record the figures in BENCHMARKS.md")
    args = parser.parse_args()
    command = "python benchmarks/incremental_balances.py " + " ".join(sys.argv[1:])

    from recon_demo.worlds.balances import build_balances_world, write_balances_to_db

    database_url, engine = fresh_database(DATABASE)
    print(f"seeding {args.n:,} users in PostgreSQL and their holdings in a devnet process ...", flush=True)
    write_balances_to_db(engine, build_balances_world(args.n))
    with engine.begin() as connection:
        connection.execute(DEMO_SQL.query("bench/age_users.sql"))

    ctx = mp.get_context("spawn")
    port_queue: mp.Queue = ctx.Queue()
    stop = ctx.Event()
    devnet = ctx.Process(target=_serve_devnet, args=(args.n, args.latency_ms / 1000, port_queue, stop), daemon=True)
    devnet.start()
    rpc_url = port_queue.get(timeout=3600)
    # Half of the changes happen on chain, half in the app's database.
    every = max(1, round(2 / args.changed_share))
    try:
        resources = bench_resources(database_url, rpc_url)
        full_s, full = _timed_run(resources)
        print(f"  full sweep (nothing recorded): {full_s:.2f} s, {full['entities_checked']:,} users compared, "
              f"{full['rpc_requests']:,} requests", flush=True)
        touched = requests.post(rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": TOUCH_METHOD,
                                               "params": {"every": every}}, timeout=600).json()["result"]["touched"]
        with engine.begin() as connection:
            rows = connection.execute(DEMO_SQL.query("bench/touch_user_balances.sql"), {"every": every}).rowcount
        incremental_s, incremental = _timed_run(resources)
        print(f"  incremental after {touched:,} holdings and {rows:,} rows changed: {incremental_s:.2f} s, "
              f"{incremental['entities_checked']:,} users compared ({incremental['change_events']:,} movement events), "
              f"{incremental['rpc_requests']:,} requests", flush=True)
    finally:
        stop.set()
        devnet.join(timeout=30)
        engine.dispose()
    ratio = incremental_s / full_s
    print(f"the incremental run cost {ratio:.1%} of the full sweep (target: at most 10%)")
    if args.write:
        header = ("| N users | latency | changed | full sweep s | incremental s | incremental / full "
                  "| users compared (incremental) | requests full / incremental |")
        lines = BENCHMARKS_MD.read_text().splitlines()
        if header not in lines:
            lines += [
                "",
                "## Incremental balances runs (`benchmarks/incremental_balances.py`)",
                "",
                "A full sweep (nothing recorded) against the next run after a share of the holdings moved on chain "
                "(each with its USDC SAC event) and a share of the rows changed in the app's database.",
                "",
                header,
                "|---|---|---|---|---|---|---|---|",
            ]
        lines += [
            f"| {args.n:,} | {args.latency_ms:g} ms | {touched:,} holdings + {rows:,} rows | {full_s:.2f} "
            f"| {incremental_s:.2f} | {ratio:.1%} | {incremental['entities_checked']:,} "
            f"| {full['rpc_requests']:,} / {incremental['rpc_requests']:,} |",
            f"<!-- {datetime.now(UTC):%Y-%m-%d}: `{command}` -->",
        ]
        BENCHMARKS_MD.write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
