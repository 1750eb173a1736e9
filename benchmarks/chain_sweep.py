"""Benchmark: the per-entity baseline against the pipeline's chain sweep.

Seeds N streams and N balances (SAC balance entries) into a devnet running in
its own process with an injected latency per request, then, each in a fresh
child process so peak RSS is its own:

  (a) baseline: one getLedgerEntries request per entity, 5 in flight, keys built
      and entries decoded with stellar_sdk's generic XDR classes (the older designs);
  (b) pipeline: `ChainReader` batches of 200, 5 in flight, byte-level keys and
      layout decoding, into the snapshot frames the assets use.

Both produce the same decoded rows (checked). Prints the figures and, with
--write, records them in BENCHMARKS.md with the command that produced them.

    python benchmarks/chain_sweep.py --n 100000 --latency-ms 20 --write
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import resource
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"


def _balance_holders(n: int) -> list[str]:
    from recon_demo.identities import contract_id

    return [contract_id(f"holder:{i}") for i in range(n)]


def _serve_devnet(n: int, latency_s: float, port_queue: mp.Queue, stop: mp.Event) -> None:
    """The devnet process: seeds the world, reports its port, serves until stopped."""
    from recon_demo.encode import sac_balance_entry, stream_entry
    from recon_demo.identities import DEVNET
    from recon_demo.worlds.streams import build_streams_world
    from soroban_devnet.ledger import DevnetLedger, FaultConfig
    from soroban_devnet.server import DevnetServer

    # A million seeded entries: state only, no per-write history (the replay benchmark measures that).
    ledger = DevnetLedger(ledger_close_seconds=math.inf, record_history=False)
    world = build_streams_world(n + 10, reference_time=datetime.now(UTC))
    for row in world.chain.head(n).to_dict("records"):
        ledger.put_raw_entry(*stream_entry(DEVNET.stream_contract_id, row))
    for i, holder in enumerate(_balance_holders(n)):
        ledger.put_raw_entry(*sac_balance_entry(DEVNET.usdc_contract_id, holder, 10_000_000 * (i + 1)))
    ledger.register_method(
        "devnetCounters", lambda _p: {"requests": dict(ledger.request_counts), "bytesSent": ledger.bytes_sent}
    )
    ledger.faults = FaultConfig(latency_s=latency_s, methods=frozenset({"getLedgerEntries"}))
    with DevnetServer(ledger) as server:
        port_queue.put(server.url)
        stop.wait()


def _counters(url: str) -> dict[str, Any]:
    import requests

    response = requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "devnetCounters"}, timeout=30)
    return response.json()["result"]


def _entities(n: int) -> tuple[list[int], list[str]]:
    """The keys both variants read: N stream ids (those the world put on chain) and N holders."""
    from recon_demo.worlds.streams import build_streams_world

    world = build_streams_world(n + 10, reference_time=datetime.now(UTC))
    return [int(i) for i in world.chain["stream_id"].head(n)], _balance_holders(n)


def run_baseline(url: str, n: int) -> dict[str, Any]:
    """(a) One request per entity, five in flight, generic SDK keys and decoding."""
    from stellar_sdk import SorobanServer, scval
    from stellar_sdk.client.requests_client import RequestsClient

    from recon_demo.identities import DEVNET
    from reconciliation_pipeline.chain.keys import contract_data_key, enum_key
    from reconciliation_pipeline.chain.layouts import SAC_BALANCE
    from reconciliation_pipeline.defs.streams.spec import STREAM_LAYOUT

    stream_ids, holders = _entities(n)
    server = SorobanServer(url, client=RequestsClient(pool_size=5, num_retries=0))
    started = time.perf_counter()

    def read_stream(stream_id: int) -> dict[str, Any] | None:
        key = contract_data_key(DEVNET.stream_contract_id, enum_key("Stream", scval.to_uint64(stream_id)))
        entries = server.get_ledger_entries([key]).entries or []
        return STREAM_LAYOUT.decode_reference(entries[0].xdr) if entries else None

    def read_balance(holder: str) -> dict[str, Any] | None:
        key = contract_data_key(DEVNET.usdc_contract_id, enum_key("Balance", scval.to_address(holder)))
        entries = server.get_ledger_entries([key]).entries or []
        return SAC_BALANCE.decode_reference(entries[0].xdr) if entries else None

    with ThreadPoolExecutor(max_workers=5) as pool:
        streams = list(pool.map(read_stream, stream_ids))
        balances = list(pool.map(read_balance, holders))
    elapsed = time.perf_counter() - started
    return {
        "seconds": elapsed,
        "decoded": sum(r is not None for r in streams) + sum(r is not None for r in balances),
        "checksum": _checksum(streams, balances),
    }


def run_pipeline(url: str, n: int) -> dict[str, Any]:
    """(b) The assets' chain path: ChainReader batches and layout decoding into frames."""
    import pandas as pd

    from recon_demo.identities import DEVNET
    from reconciliation_pipeline.chain.layouts import SAC_BALANCE
    from reconciliation_pipeline.chain.reader import ChainReader, ReaderSettings
    from reconciliation_pipeline.core.snapshots import data_key_ledger_keys, read_entries
    from reconciliation_pipeline.core.spec import Authority, DataKey, Entity, KeyKind, Layout
    from reconciliation_pipeline.defs.streams.spec import STREAM

    holding = Entity(name="sac_balances", entity_type="holder", source="holders", key_column="holder",
                     key_kind=KeyKind.ADDRESS, entity_id_prefix="", key_source=DataKey("Balance", "usdc_contract_id"),
                     layout=Layout.of(SAC_BALANCE), compared=(), authority=Authority.CHAIN,
                     description="a SAC balance entry per holder")

    def read(reader: ChainReader, entity: Entity, contract_id: str, keys: list[Any]) -> pd.DataFrame:
        assert isinstance(entity.key_source, DataKey)
        ledger_keys = data_key_ledger_keys(entity.key_source, entity.kind, contract_id, keys)
        frame, _ = read_entries(reader, entity, entity.key, entity.kind, pd.Series(keys, dtype=object),
                                pd.Series(ledger_keys, dtype=object))
        # Rows come in the order batches arrived (requests are concurrent): compare in key order.
        order = pd.Index(frame[entity.key]).get_indexer(entity.kind.normalize(pd.Series(keys, dtype=object)))
        return frame.iloc[order].reset_index(drop=True)

    stream_ids, holders = _entities(n)
    started = time.perf_counter()
    reader = ChainReader(url, ReaderSettings(max_in_flight=5))
    streams = read(reader, STREAM, DEVNET.stream_contract_id, stream_ids)
    balances = read(reader, holding, DEVNET.usdc_contract_id, holders)
    elapsed = time.perf_counter() - started
    stream_rows = [
        None if status != "ok" else {c: row[c] for c in STREAM.layout.columns}
        for status, row in zip(streams["read_status"], streams.to_dict("records"), strict=True)
    ]
    balance_rows = [
        None if status != "ok" else {c: row[c] for c in SAC_BALANCE.columns}
        for status, row in zip(balances["read_status"], balances.to_dict("records"), strict=True)
    ]
    return {
        "seconds": elapsed,
        "decoded": int((streams["read_status"] == "ok").sum() + (balances["read_status"] == "ok").sum()),
        "checksum": _checksum(stream_rows, balance_rows),
    }


def _checksum(streams: list[dict[str, Any] | None], balances: list[dict[str, Any] | None]) -> str:
    import hashlib

    digest = hashlib.sha256()
    for row in [*streams, *balances]:
        digest.update(json.dumps(row, sort_keys=True, default=str, allow_nan=False).encode())
    return digest.hexdigest()[:16]


def _child(variant: str, url: str, n: int) -> None:
    """Run one variant in this (fresh) process and print its figures as JSON."""
    before = _counters(url)
    result = (run_baseline if variant == "baseline" else run_pipeline)(url, n)
    after = _counters(url)
    result["requests"] = after["requests"].get("getLedgerEntries", 0) - before["requests"].get("getLedgerEntries", 0)
    result["bytes_received"] = after["bytesSent"] - before["bytesSent"]
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result, allow_nan=False))


def _run_child(variant: str, url: str, n: int) -> dict[str, Any]:
    output = subprocess.run(
        [sys.executable, __file__, "--child", variant, "--url", url, "--n", str(n)],
        check=True, capture_output=True, text=True,
    )
    return json.loads(output.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000, help="streams and balances each (default 10000)")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="devnet latency per request (default 20)")
    parser.add_argument("--skip-baseline", action="store_true", help="measure only the pipeline (e.g. at 1M)")
    parser.add_argument("--write", action="store_true", help="record the figures in BENCHMARKS.md")
    parser.add_argument("--child", choices=["baseline", "pipeline"], help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args.child, args.url, args.n)
        return 0

    command = "python benchmarks/chain_sweep.py " + " ".join(a for a in sys.argv[1:])
    print(f"seeding a devnet process with {args.n} streams and {args.n} balances ...", flush=True)
    ctx = mp.get_context("spawn")
    port_queue: mp.Queue = ctx.Queue()
    stop = ctx.Event()
    devnet = ctx.Process(target=_serve_devnet, args=(args.n, args.latency_ms / 1000, port_queue, stop), daemon=True)
    seed_started = time.perf_counter()
    devnet.start()
    url = port_queue.get(timeout=3600)
    print(f"devnet ready at {url} after {time.perf_counter() - seed_started:.1f} s; latency {args.latency_ms} ms",
          flush=True)
    results: dict[str, dict[str, Any]] = {}
    try:
        variants = ["pipeline"] if args.skip_baseline else ["baseline", "pipeline"]
        for variant in variants:
            print(f"running ({'a' if variant == 'baseline' else 'b'}) {variant} ...", flush=True)
            results[variant] = _run_child(variant, url, args.n)
            r = results[variant]
            print(f"  {variant}: {r['seconds']:.2f} s, {2 * args.n / r['seconds']:,.0f} entities/s, "
                  f"{r['requests']:,} getLedgerEntries requests, {r['bytes_received'] / 1e6:,.1f} MB received, "
                  f"peak RSS {r['peak_rss_mib']:,.0f} MiB", flush=True)
    finally:
        stop.set()
        devnet.join(timeout=30)
    if "baseline" in results:
        a, b = results["baseline"], results["pipeline"]
        if a["checksum"] != b["checksum"] or a["decoded"] != b["decoded"]:
            print("MISMATCH: baseline and pipeline decoded different rows", file=sys.stderr)
            return 1
        print(f"ratio: the pipeline is {a['seconds'] / b['seconds']:.1f}x faster than the baseline "
              f"(b/a time = {b['seconds'] / a['seconds']:.3f}); both decoded {b['decoded']:,} identical rows")
    expected_requests = 2 * math.ceil(args.n / 200)
    print(f"pipeline requests: {results['pipeline']['requests']:,} (ceil(N/200) per entity kind = {expected_requests:,})")
    if args.write:
        _write(command, args, results)
    return 0


def _write(command: str, args: argparse.Namespace, results: dict[str, dict[str, Any]]) -> None:
    header = "| N (each kind) | latency | variant | seconds | entities/s | getLedgerEntries | MB received | peak RSS MiB |"
    lines = BENCHMARKS_MD.read_text().splitlines() if BENCHMARKS_MD.exists() else []
    if header not in lines:
        lines = [
            "# Benchmarks",
            "",
            "Measured on this project's machine (2 cores, 24 GiB) by `benchmarks/chain_sweep.py`;",
            "each row says the command that produced it. (a) = one request per entity, 5 in flight,",
            "stellar_sdk decoding; (b) = the pipeline's batched reader and layout decoding.",
            "",
            header,
            "|---|---|---|---|---|---|---|---|",
        ]
    rows = [
        f"| {args.n:,} | {args.latency_ms:g} ms | {'(a) baseline' if variant == 'baseline' else '(b) pipeline'} "
        f"| {r['seconds']:.2f} | {2 * args.n / r['seconds']:,.0f} | {r['requests']:,} "
        f"| {r['bytes_received'] / 1e6:,.1f} | {r['peak_rss_mib']:,.0f} |"
        for variant, r in results.items()
    ]
    if "baseline" in results:
        ratio = results["baseline"]["seconds"] / results["pipeline"]["seconds"]
        rows.append(f"| {args.n:,} | {args.latency_ms:g} ms | ratio a/b | {ratio:.1f}x | | | | |")
    rows.append(f"<!-- {datetime.now(UTC):%Y-%m-%d}: `{command}` -->")
    # Below the table's last row (rows and their comments), not at the end of the file.
    end = lines.index(header) + 1
    while end < len(lines) and lines[end].startswith(("|", "<!--")):
        end += 1
    BENCHMARKS_MD.write_text("\n".join([*lines[:end], *rows, *lines[end:]]) + "\n")


if __name__ == "__main__":
    sys.exit(main())
