"""Benchmark: a full sweep of N streams and N balances, end to end through Dagster.

Seeds N streams and N users with a wallet (USDC balances) in a real PostgreSQL
(the embedded server, its own data folder, COPY) and the same entities in a
devnet running in its own process with an injected latency per
`getLedgerEntries` request. Besides each world's drift catalogue, a small share
of the database rows drifts (`--drift-share`, 0.1% by default): one more base
unit released on streams, one more USDC credited to users.

Then materializes the real assets with the resources of `build_resources()`
(every setting at its default, pointed at the bench database and devnet), each
group in a fresh child process so its peak RSS is its own:

  streams:  the nightly group for one daily partition (yesterday): db_streams,
            chain_streams, chain_stream_escrow, stream_discrepancies, stream_repairs
            (planned, not applied);
  balances: db_usdc_balances, chain_usdc_balances, usdc_balance_discrepancies.

Reports per group: wall seconds of the materialization, peak RSS of the process
(and, where the sweep forked worker processes, the peak PSS of the process and its
workers together: a forked worker shares most of its pages with its parent, so
PSS, not the sum of RSS, is the memory they take), rows on each side, findings persisted, getLedgerEntries requests (the devnet's
counters), the network floor of the run (requests × injected latency ÷ requests
in flight: no reader can be faster) and seconds ÷ floor, and per step its seconds
and the peak RSS sampled while it ran. With --write, appends the figures to
BENCHMARKS.md with the command that produced them.

    python benchmarks/full_sweep.py --n 100000 --latency-ms 20 --write
    python benchmarks/full_sweep.py --n 5000000 --groups streams --write
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench_env import QUIET

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
DATABASE = "recon_bench_full_sweep"
GROUPS = ("streams", "balances")
SECTION = "## Streaming full sweep, end to end (`benchmarks/full_sweep.py`)"
HEADER = ("| N (each kind) | latency | group | seconds | peak RSS MiB | requests | floor s | seconds / floor | DB rows "
          "| chain rows | findings | slowest step | load (1 min) | CPU s pipeline / devnet |")
BALANCE_DRIFT = 10_000_000
"""What a drifted user's database balance is off by: 1 USDC, far beyond the tolerance."""
DRIFT_SEED = 20261124


def users_for_wallets(n: int) -> int:
    """Users the balances world needs for `n` of them to have a wallet.

    The world leaves every 10th user and user 12 without one.
    """
    users = (n + 1) * 10 // 9
    while users - users // 10 - 1 < n:
        users += 1
    return users


# -- seeding --------------------------------------------------------------------------


def _serve_devnet(
    n: int, users: int, latency_s: float, reference: datetime, port_queue: mp.Queue, stop: mp.Event
) -> None:
    """The devnet process: both worlds' chain side, served until stopped."""
    from recon_demo.worlds.balances import build_balances_world, load_balances_into_ledger
    from recon_demo.worlds.streams import build_streams_world, load_streams_into_ledger
    from soroban_devnet.ledger import DevnetLedger, FaultConfig
    from soroban_devnet.server import DevnetServer

    # Many seeded entries: state only, no per-write history (the replay benchmark measures that).
    ledger = DevnetLedger(record_history=False)
    if n:
        load_streams_into_ledger(ledger, build_streams_world(n, reference_time=reference))
    if users:
        # Without the world's RPC burst: every holder is read, as in a healthy sweep.
        load_balances_into_ledger(ledger, build_balances_world(users))
    ledger.register_method("devnetCounters", lambda _p: {"requests": dict(ledger.request_counts)})
    ledger.faults = FaultConfig(latency_s=latency_s, methods=frozenset({"getLedgerEntries"}))
    with DevnetServer(ledger) as server:
        port_queue.put(server.url)
        stop.wait()


def _write_users(engine: Any, users: int, drift_share: float) -> int:
    """The balances world's users by COPY, a `drift_share` of them credited 1 USDC the chain
    never saw (outside the catalogue's users and the last batch). Returns how many drifted."""
    import numpy as np

    from recon_demo import DEMO_SQL
    from recon_demo.worlds.balances import build_balances_world


    db = build_balances_world(users).db
    rng = np.random.default_rng(DRIFT_SEED)
    drifted = set(rng.choice(np.arange(20, users - 400), size=round(drift_share * users), replace=False).tolist())
    with engine.begin() as connection:
        cursor = connection.connection.driver_connection.cursor()
        with cursor.copy(DEMO_SQL.read("bench/copy_users.sql")) as copy:
            for position, row in enumerate(db.itertuples(index=False)):
                balance = int(row.usdc_balance) + (BALANCE_DRIFT if position in drifted else 0)
                wallet = row.wallet_address if isinstance(row.wallet_address, str) else None
                copy.write_row((int(row.user_id), row.username, wallet, str(balance)))
    return len(drifted)


def _seed_database(database_url: str, n: int, users: int, reference: datetime, drift_share: float) -> dict[str, int]:
    import sqlalchemy as sa

    from recon_demo import DEMO_SQL
    from recon_demo.worlds.streams import build_streams_world, write_streams_to_db
    from reconciliation_pipeline.core import sql
    from reconciliation_pipeline.resources import sqlalchemy_url

    engine = sa.create_engine(sqlalchemy_url(database_url))
    try:
        sql.apply_reference_app_schema(engine)
        sql.apply_recon_migrations(engine)
        touched = drifted_users = 0
        if n:
            write_streams_to_db(engine, build_streams_world(n, reference_time=reference))
            with engine.begin() as connection:
                connection.execute(DEMO_SQL.query("bench/age_streams.sql"))
                touched = connection.execute(
                    DEMO_SQL.query("bench/touch_streams.sql"), {"every": max(1, round(1 / drift_share))}
                ).rowcount
        if users:
            drifted_users = _write_users(engine, users, drift_share)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(DEMO_SQL.query("bench/settle.sql"))
    finally:
        engine.dispose()
    return {"streams_touched": touched, "users_drifted": drifted_users}


# -- one group in a child process ------------------------------------------------------


def _descendants(pid: int) -> list[int]:
    """The processes `pid` started, and theirs (a sweep's worker processes)."""
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except FileNotFoundError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as children:
                for child in children.read().split():
                    found += [int(child), *_descendants(int(child))]
        except FileNotFoundError:
            continue
    return found


def _pss_bytes(pid: int) -> int:
    """A process's proportional set size: its private pages plus its share of pages it shares
    (a forked worker shares most of its parent's). Summed over processes, the memory they use."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as rollup:
            for line in rollup:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


@dataclass
class RssSampler:
    """Samples this process's resident set every `interval_s`, to attribute peaks to steps, and
    every `tree_interval_s` the PSS of this process and its descendants (the sweep's workers).

    PSS is read from /proc/<pid>/smaps_rollup, which walks the process's pages: 8-9 ms of CPU a
    read here with the workers running, so every 0.25 s it took 3 s of a 1M run's CPU from the
    run it measures. The workers' memory grows over seconds, so once a second still finds its peak."""

    interval_s: float = 0.05
    tree_interval_s: float = 1.0
    samples: list[tuple[float, int]] = field(default_factory=list)
    tree_samples: list[tuple[float, int, int]] = field(default_factory=list)
    """(time, PSS of this process and its descendants, how many processes that was)."""
    _stop: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        self._page = os.sysconf("SC_PAGE_SIZE")
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        own = os.getpid()
        next_tree = 0.0
        with open("/proc/self/statm") as statm:
            while not self._stop.is_set():
                statm.seek(0)
                now = time.time()
                self.samples.append((now, int(statm.read().split()[1]) * self._page))
                if now >= next_tree:
                    processes = [own, *_descendants(own)]
                    self.tree_samples.append((now, sum(map(_pss_bytes, processes)), len(processes)))
                    next_tree = now + self.tree_interval_s
                self._stop.wait(self.interval_s)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def peak_mib(self, start: float, end: float) -> float:
        """The highest sample within [start, end]; for a step shorter than the interval, the last before it ended."""
        inside = [rss for t, rss in self.samples if start <= t <= end]
        before = [rss for t, rss in self.samples if t <= end][-1:]
        return max(inside or before or [0]) / 2**20

    def tree_peak(self) -> tuple[float, int]:
        """The highest PSS of the process tree (MiB) and the most processes it held."""
        if not self.tree_samples:
            return 0.0, 1
        return max(pss for _, pss, _ in self.tree_samples) / 2**20, max(n for _, _, n in self.tree_samples)


def _steps(instance: Any, run_id: str, sampler: RssSampler) -> dict[str, dict[str, float]]:
    """Per step: seconds from its start to its success and the peak RSS sampled meanwhile."""
    import dagster as dg

    started: dict[str, float] = {}
    steps: dict[str, dict[str, float]] = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            started[event.step_key] = record.timestamp
        elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
            start = started[event.step_key]
            steps[event.step_key] = {
                "seconds": round(record.timestamp - start, 2),
                "peak_rss_mib": round(sampler.peak_mib(start, record.timestamp)),
            }
    return steps


def peak_rss_mib() -> float:
    """This process's own peak RSS (VmHWM). Not `ru_maxrss`: Linux keeps that across exec, so a
    child started from a parent holding a seeded 1M world starts at the parent's size."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def _sampled_peak(instance: Any, run_id: str, sampler: RssSampler, started_at: float) -> str:
    """When the highest RSS sample was taken: in which step, or between steps (loading or storing a value)."""
    if not sampler.samples:
        return "no samples"
    at, rss = max(sampler.samples, key=lambda sample: sample[1])
    import dagster as dg

    started: dict[str, float] = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            started[event.step_key] = record.timestamp
        elif event.step_key in started and started[event.step_key] <= at <= record.timestamp and \
                event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
            return f"{rss / 2**20:,.0f} MiB at {at - started_at:.1f} s, in {event.step_key}"
    return f"{rss / 2**20:,.0f} MiB at {at - started_at:.1f} s, between steps"


def _child(group: str, database_url: str, rpc_url: str, partition_key: str) -> None:
    """Materialize one group in this (fresh) process and print its figures as JSON."""
    import dagster as dg
    import sqlalchemy as sa

    from recon_demo import DEMO_SQL
    from recon_demo.identities import DEVNET
    from reconciliation_pipeline import localenv
    from reconciliation_pipeline.core.watermarks import FULL_SWEEP, SWEEP_TAG
    from reconciliation_pipeline.defs.balances.definitions import BALANCES
    from reconciliation_pipeline.defs.streams.definitions import STREAMS
    from reconciliation_pipeline.resources import build_resources, sqlalchemy_url

    # Every setting at its default, the database and the chain pointed at the bench's.
    os.environ.update(localenv.resolve_environment(
        {"DATABASE_URL": database_url}, {**DEVNET.environment(), "SOROBAN_RPC_URL": rpc_url}
    ))
    streams = group == "streams"
    instance = dg.DagsterInstance.ephemeral()
    peak_before = peak_rss_mib()
    cpu_before = _own_cpu_s()
    with RssSampler() as sampler:
        started_at = time.time()
        started = time.perf_counter()
        result = dg.materialize(
            STREAMS.assets("nightly") if streams else BALANCES.assets("frequent"),
            resources=build_resources(),
            run_config=QUIET,
            partition_key=partition_key if streams else None,
            # What the nightly schedules ask: compare every entity, whatever earlier runs recorded.
            tags={SWEEP_TAG: FULL_SWEEP},
            instance=instance,
        )
        seconds = time.perf_counter() - started
    cpu_s = _own_cpu_s() - cpu_before
    tree_peak_pss_mib, processes = sampler.tree_peak()
    peak_after = peak_rss_mib()
    db_asset, chain_asset = ("db_streams", "chain_streams") if streams else ("db_usdc_balances", "chain_usdc_balances")

    def row_count(asset: str) -> int:
        return int(result.asset_materializations_for_node(asset)[0].metadata["dagster/row_count"].value)

    engine = sa.create_engine(sqlalchemy_url(database_url))
    with engine.connect() as connection:
        runs = [dict(r._mapping) for r in connection.execute(DEMO_SQL.query("bench/run_summary.sql"),
                                                             {"run_id": result.run_id})]
    engine.dispose()
    print(json.dumps({
        "seconds": seconds,
        "cpu_s": cpu_s,
        "peak_rss_mib": peak_rss_mib(),
        "tree_peak_pss_mib": tree_peak_pss_mib,
        "processes": processes,
        "db_rows": row_count(db_asset),
        "chain_rows": row_count(chain_asset),
        "runs": runs,
        "steps": _steps(instance, result.run_id, sampler),
        "in_flight": int(os.environ["RPC_MAX_IN_FLIGHT"]),
        "sampled_peak": _sampled_peak(instance, result.run_id, sampler, started_at)
        + f"; peak RSS {peak_before:,.0f} MiB before the run, {peak_after:,.0f} MiB at its end",  # what the run's reader was configured with
    }, default=str))


def _own_cpu_s() -> float:
    """CPU seconds this process (every thread) and its ended children (a sweep's workers) have used."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def _process_cpu_s(pid: int) -> float:
    """CPU seconds another process (the devnet's) has used: utime + stime of /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _ledger_entries_requests(rpc_url: str) -> int:
    import requests

    response = requests.post(rpc_url, json={"jsonrpc": "2.0", "id": 1, "method": "devnetCounters"}, timeout=30)
    return int(response.json()["result"]["requests"].get("getLedgerEntries", 0))


def _run_child(group: str, database_url: str, rpc_url: str, partition_key: str, devnet_pid: int) -> dict[str, Any]:
    before = _ledger_entries_requests(rpc_url)
    devnet_cpu_before = _process_cpu_s(devnet_pid)
    output = subprocess.run(
        [sys.executable, __file__, "--child", group, "--database-url", database_url, "--rpc-url", rpc_url,
         "--partition", partition_key],
        check=True, capture_output=True, text=True,
    )
    result = json.loads(output.stdout.strip().splitlines()[-1])
    result["requests"] = _ledger_entries_requests(rpc_url) - before
    result["devnet_cpu_s"] = _process_cpu_s(devnet_pid) - devnet_cpu_before
    result["load"] = os.getloadavg()[0]
    return result


def _floor_s(result: dict[str, Any], latency_ms: float) -> float:
    """The network floor: every request waits the injected latency, `in_flight` at a time."""
    return result["requests"] * latency_ms / 1000 / result["in_flight"]


# -- the benchmark ----------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000, help="streams and users with a wallet (default 10000)")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="devnet latency per request (default 20)")
    parser.add_argument("--drift-share", type=float, default=0.001,
                        help="share of database rows that drift beyond the catalogues (default 0.001)")
    parser.add_argument("--groups", nargs="+", choices=GROUPS, default=list(GROUPS),
                        help="the groups to materialize (default both)")
    parser.add_argument("--write", action="store_true", help="record the figures in BENCHMARKS.md")
    parser.add_argument("--child", choices=GROUPS, help=argparse.SUPPRESS)
    parser.add_argument("--database-url", help=argparse.SUPPRESS)
    parser.add_argument("--rpc-url", help=argparse.SUPPRESS)
    parser.add_argument("--partition", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if not 0 < args.drift_share <= 1:
        parser.error("--drift-share must be within (0, 1]")
    if args.child:
        _child(args.child, args.database_url, args.rpc_url, args.partition)
        return 0

    from reconciliation_pipeline import localenv

    command = "python benchmarks/full_sweep.py " + " ".join(sys.argv[1:])
    # Only the chosen groups' worlds are seeded (a 5M streams run need not seed 5M users).
    streams_n = args.n if "streams" in args.groups else 0
    users = users_for_wallets(args.n) if "balances" in args.groups else 0
    reference = datetime.now(UTC)
    partition_key = f"{reference - timedelta(days=1):%Y-%m-%d}"

    ctx = mp.get_context("spawn")
    port_queue: mp.Queue = ctx.Queue()
    stop = ctx.Event()
    devnet = ctx.Process(target=_serve_devnet, args=(streams_n, users, args.latency_ms / 1000, reference, port_queue,
                                                     stop), daemon=True)
    started = time.perf_counter()
    devnet.start()  # seeds the chain side while this process seeds the database
    print(f"seeding {streams_n:,} streams and {users:,} users ({args.n if users else 0:,} with a wallet) in "
          "PostgreSQL (COPY) and in a devnet process ...", flush=True)
    admin_url = localenv.start_embedded_postgres(localenv.LOCAL_DIR / "bench-pgdata", keep_running=False)
    localenv.drop_database(admin_url, DATABASE)
    localenv.ensure_database(admin_url, DATABASE)
    database_url = localenv.with_database(admin_url, DATABASE)
    drift = _seed_database(database_url, streams_n, users, reference, args.drift_share)
    print(f"  database seeded after {time.perf_counter() - started:.1f} s; {drift['streams_touched']:,} streams "
          f"and {drift['users_drifted']:,} users drifted", flush=True)
    rpc_url = port_queue.get(timeout=3 * 3600)
    print(f"  devnet ready at {rpc_url} after {time.perf_counter() - started:.1f} s; "
          f"latency {args.latency_ms:g} ms", flush=True)

    results: dict[str, dict[str, Any]] = {}
    try:
        for group in args.groups:
            print(f"materializing the {group} group ...", flush=True)
            results[group] = r = _run_child(group, database_url, rpc_url, partition_key, devnet.pid)
            floor = _floor_s(r, args.latency_ms)
            print(f"  {group}: {r['seconds']:.2f} s, peak RSS {r['peak_rss_mib']:,.0f} MiB (with its "
                  f"{r['processes'] - 1} worker processes: {r['tree_peak_pss_mib']:,.0f} MiB PSS), "
                  f"{r['db_rows']:,} DB rows, {r['chain_rows']:,} chain rows, {r['requests']:,} requests, "
                  f"network floor {floor:.2f} s ({r['seconds'] / floor:.2f}x), load {r['load']:.2f}", flush=True)
            print(f"    CPU: the pipeline's process {r['cpu_s']:.1f} s, the devnet's {r['devnet_cpu_s']:.1f} s "
                  f"({(r['cpu_s'] + r['devnet_cpu_s']) / r['seconds']:.2f} of this machine's "
                  f"{os.cpu_count()} cores on average)", flush=True)
            for run in r["runs"]:
                print(f"    persisted ({run['domain']}): {run['findings']:,} findings, status {run['status']}, "
                      f"{run['entities_checked']:,} checked, {run['entities_unchecked']:,} unchecked")
            print(f"    highest RSS sample: {r['sampled_peak']}")
            for step, figures in r["steps"].items():
                print(f"    {step}: {figures['seconds']:.2f} s, peak RSS {figures['peak_rss_mib']:,} MiB")
    finally:
        stop.set()
        devnet.join(timeout=30)
    over = [g for g, r in results.items() if _peak_mib(r) > 600]
    print("peak memory (RSS, and PSS with the workers) within 600 MiB for every group" if not over
          else f"peak memory above 600 MiB: {', '.join(over)}")
    if args.write:
        _write(command, args, results)
    return 0


def _memory(result: dict[str, Any]) -> str:
    """The run's process's peak RSS and, where the sweep had workers, what all its processes held."""
    if result["processes"] <= 1:
        return f"{result['peak_rss_mib']:,.0f}"
    return f"{result['peak_rss_mib']:,.0f} ({result['processes']} processes: {result['tree_peak_pss_mib']:,.0f} PSS)"


def _peak_mib(result: dict[str, Any]) -> float:
    """The memory the group took: its process's peak RSS, or its processes' peak PSS if higher."""
    return max(result["peak_rss_mib"], result["tree_peak_pss_mib"])


def _findings(result: dict[str, Any]) -> int:
    return sum(int(run["findings"]) for run in result["runs"])


def _slowest_step(result: dict[str, Any]) -> str:
    step, figures = max(result["steps"].items(), key=lambda item: item[1]["seconds"])
    return f"{step} {figures['seconds']:.1f} s / {figures['peak_rss_mib']:,} MiB"


def _write(command: str, args: argparse.Namespace, results: dict[str, dict[str, Any]]) -> None:
    lines = BENCHMARKS_MD.read_text().splitlines()
    rows = [
        f"| {args.n:,} | {args.latency_ms:g} ms | {group} | {r['seconds']:.2f} | {_memory(r)} "
        f"| {r['requests']:,} | {_floor_s(r, args.latency_ms):.2f} | {r['seconds'] / _floor_s(r, args.latency_ms):.2f} "
        f"| {r['db_rows']:,} | {r['chain_rows']:,} | {_findings(r):,} | {_slowest_step(r)} | {r['load']:.2f} "
        f"| {r['cpu_s']:.0f} / {r['devnet_cpu_s']:.0f} |"
        for group, r in results.items()
    ]
    rows.append(f"<!-- {datetime.now(UTC):%Y-%m-%d}: `{command}` -->")
    if SECTION not in lines:
        lines += [
            "",
            SECTION,
            "",
            "The streaming sweep (`core.streaming`) through Dagster (`materialize`, in-process executor,",
            "`build_resources()` at its defaults), each group in a fresh process: seconds of the materialization,",
            "the process's peak RSS, getLedgerEntries requests, the network floor (requests × latency ÷ 5 in",
            "flight) and seconds ÷ floor, rows on each side, findings persisted, the slowest step (its seconds /",
            "the peak RSS sampled while it ran), and the machine's 1-minute load average after the group (2",
            "cores, shared with other work: a load above 2 means the run competed for CPU). The streams group",
            "is the nightly one for one daily partition; besides the drift catalogues, a share of the database",
            "rows drifts (`--drift-share`, 0.1% by default), so findings grow with N. The last column is the CPU",
            "seconds the pipeline's process and the devnet's process used during the group: on 2 cores, their",
            "sum over the seconds says how much of the machine the run had.",
            "",
            HEADER,
            "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
        ]
        lines += rows
    else:
        # Rows go after the section's last table row (and its command comment), before its prose.
        start = lines.index(SECTION) + 1
        end = start
        while end < len(lines) and not lines[end].startswith("## "):
            end += 1
        table = [i for i in range(start, end) if lines[i].startswith(("|", "<!--"))]
        at = table[-1] + 1 if table else end
        lines[at:at] = rows
    BENCHMARKS_MD.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
