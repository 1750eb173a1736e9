"""Benchmark: ledger-metadata replay over ledgers shaped like a public network's.

A devnet in its own process serves `--ledgers` ledgers of `--txs` transactions each through
getLedgers (with `--latency-ms` per request). The transactions are what a busy network carries
(`soroban_devnet.traffic`: payments, path payments crossing offers and pools, offer updates,
account creations, trustlines, fee bumps, Soroban invocations of unwatched contracts with their
auth, footprints, TTLs and events); a share of them (`--watched-share`) invoke the watched lending
contract and emit its events. The replay (`chain.replay.replay`) reads the range the way the
pipeline does (adaptive pages, a few in flight) and must find every watched event; it prints
ledgers per second, transactions per second, bytes read and how many transactions it decoded.
With --write the figures go to BENCHMARKS.md with the command.

    python benchmarks/ledger_replay.py --ledgers 1000 --txs 300 --watched-share 0.02 --write
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import random
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS_MD = ROOT / "BENCHMARKS.md"
TEMPLATES = 400
"""Distinct unwatched transactions built with the SDK (each ledger draws from them; building one
takes milliseconds, a ledger's worth each time would take longer than the replay measured)."""


def _serve_devnet(ledgers: int, txs: int, share: float, latency_s: float, port_queue: mp.Queue,
                  stop: mp.Event) -> None:
    """The devnet process: builds the ledgers, reports its url and how many watched events it holds."""
    from stellar_sdk import scval

    from recon_demo.identities import DEVNET
    from soroban_devnet.ledger import DevnetLedger, FaultConfig
    from soroban_devnet.server import DevnetServer
    from soroban_devnet.traffic import KINDS, TrafficMaker

    ledger = DevnetLedger(ledger_close_seconds=float("inf"), protocol_version=23)
    latest = ledger.latest_ledger
    first = latest - ledgers + 1
    maker = TrafficMaker(latest, DEVNET.network_passphrase, meta_version=4)
    rng = random.Random(13)
    # Real traffic's mix: mostly payments and offer management, some path payments and invocations.
    weights = {"payment": 30, "path_payment": 15, "manage_offer": 25, "invoke": 18, "fee_bump_payment": 5,
               "create_account": 3, "change_trust": 4}
    kinds = [k for k in KINDS for _ in range(weights[k])]
    pool = [maker.make(rng.choice(kinds), random.Random(i)) for i in range(TEMPLATES)]
    watched_pool = []
    for i in range(max(8, TEMPLATES // 20)):
        envelope, result, meta = maker.invoke(
            random.Random(10_000 + i), contract=DEVNET.lending_contract_id,
            events=[([scval.to_symbol("loan_repaid"), scval.to_uint64(i)], scval.to_int128(1_000 + i))],
            writes=[(scval.to_vec([scval.to_symbol("Loan"), scval.to_uint64(i)]), scval.to_int128(i))])
        watched_pool.append((envelope.to_xdr_bytes(), result.to_xdr_bytes(), meta.to_xdr_bytes()))
    watched = 0
    for seq in range(first, latest + 1):
        for _ in range(txs):
            if rng.random() < share:
                parts = rng.choice(watched_pool)
                watched += 1
            else:
                parts = rng.choice(pool)
            ledger.record_raw_transaction(seq, rng.randbytes(32).hex(), *parts)
        ledger.ledger_close_meta(seq)  # built once now, so serving it is not what is measured
    ledger.register_method("devnetCounters", lambda _p: {"requests": dict(ledger.request_counts),
                                                         "bytesSent": ledger.bytes_sent})
    ledger.faults = FaultConfig(latency_s=latency_s, methods=frozenset({"getLedgers"}))
    with DevnetServer(ledger) as server:
        port_queue.put((server.url, first, latest, watched))
        stop.wait()


def _counters(url: str) -> dict[str, Any]:
    import requests

    return requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "devnetCounters"}, timeout=30).json()["result"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ledgers", type=int, default=1_000)
    parser.add_argument("--txs", type=int, default=300, help="transactions per ledger")
    parser.add_argument("--watched-share", type=float, default=0.02, help="share touching the watched contract")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="devnet latency per getLedgers request")
    parser.add_argument("--write", action="store_true", help="record the figures in BENCHMARKS.md")
    args = parser.parse_args()
    command = "python benchmarks/ledger_replay.py " + " ".join(sys.argv[1:])

    from recon_demo.identities import DEVNET
    from reconciliation_pipeline.chain.ledgermeta import Watch
    from reconciliation_pipeline.chain.reader import ChainReader, ReaderSettings
    from reconciliation_pipeline.chain.replay import replay

    print(f"building {args.ledgers:,} ledgers of {args.txs} transactions ({args.watched_share:.1%} watched) "
          "in a devnet process ...", flush=True)
    ctx = mp.get_context("spawn")
    port_queue: mp.Queue = ctx.Queue()
    stop = ctx.Event()
    devnet = ctx.Process(target=_serve_devnet, args=(args.ledgers, args.txs, args.watched_share,
                                                     args.latency_ms / 1000, port_queue, stop), daemon=True)
    built_at = time.perf_counter()
    devnet.start()
    url, first, latest, watched = port_queue.get(timeout=7200)
    print(f"devnet ready after {time.perf_counter() - built_at:.0f} s: ledgers {first}..{latest}, "
          f"{watched:,} watched transactions", flush=True)
    try:
        reader = ChainReader(url, ReaderSettings(request_timeout_s=60))
        sent_before = _counters(url)["bytesSent"]
        started = time.perf_counter()
        result = replay(reader, first, latest + 1, Watch(contracts=frozenset({DEVNET.lending_contract_id})))
        seconds = time.perf_counter() - started
        reader.close()
        sent = _counters(url)["bytesSent"] - sent_before
    finally:
        stop.set()
        devnet.join(timeout=60)
    if len(result.events) != watched or result.problems or result.ledgers != args.ledgers:
        print(f"MISMATCH: {len(result.events)} events for {watched} watched transactions, "
              f"{len(result.problems)} problems, {result.ledgers} ledgers", file=sys.stderr)
        return 1
    rate = result.ledgers / seconds
    print(f"replayed {result.ledgers:,} ledgers in {seconds:.2f} s: {rate:,.1f} ledgers/s, "
          f"{result.transactions / seconds:,.0f} transactions/s; {result.bytes_read / 1e6:,.1f} MB of metadata "
          f"({sent / 1e6:,.1f} MB over HTTP) in {result.requests} requests; decoded {result.decoded:,} of "
          f"{result.transactions:,} transactions; found all {len(result.events):,} watched events")
    print(f"a day (17,280 ledgers) at this rate: {17_280 / rate / 60:.1f} min (target: 50 ledgers/s, under 6 min)")
    if args.write:
        _write(command, args, seconds, result, sent)
    return 0


def _write(command: str, args: argparse.Namespace, seconds: float, result: Any, sent: int) -> None:
    header = ("| ledgers | txs per ledger | watched | latency | seconds | ledgers/s | transactions/s | MB metadata "
              "| MB over HTTP | requests | decoded |")
    lines = BENCHMARKS_MD.read_text().splitlines()
    if header not in lines:
        lines += [
            "",
            "## Ledger-metadata replay (`benchmarks/ledger_replay.py`)",
            "",
            "getLedgers over ledgers shaped like a public network's (classic payments, path payments, offers, "
            "fee bumps, Soroban invocations of unwatched contracts; a share invoking the watched lending contract), "
            "served by a devnet process; the replay skips unwatched transactions without decoding them and must "
            "find every watched event.",
            "",
            header,
            "|---|---|---|---|---|---|---|---|---|---|---|",
        ]
    at = max(i for i, line in enumerate(lines) if line == header) + 2
    while at < len(lines) and (lines[at].startswith("| ") or lines[at].startswith("<!--")):
        at += 1
    lines[at:at] = [
        f"| {result.ledgers:,} | {args.txs} | {args.watched_share:.1%} | {args.latency_ms:g} ms | {seconds:.2f} "
        f"| {result.ledgers / seconds:,.1f} | {result.transactions / seconds:,.0f} | {result.bytes_read / 1e6:,.1f} "
        f"| {sent / 1e6:,.1f} | {result.requests} | {result.decoded:,} |",
        f"<!-- {datetime.now(UTC):%Y-%m-%d}: `{command}` -->",
    ]
    BENCHMARKS_MD.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
