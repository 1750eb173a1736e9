"""A 2-day backfill of `nightly_reconciliation` launched locally, timed to its runs' end.

Run it beside `make ui` (after `make demo`, so the demo database holds the world the devnet
serves), on the demo's Dagster instance:

    python benchmarks/local_backfill.py --ui-url http://127.0.0.1:3000 --via cli   # dagster job backfill
    python benchmarks/local_backfill.py --ui-url http://127.0.0.1:3000 --via ui    # what the UI's dialog sends

`cli` submits the runs at once; `ui` creates the backfill the daemon then submits on its next
pass (every 30 s). It prints the seconds from launch to both runs finished, when the runs were
submitted and how long each ran (the days run at once), and the 1-minute load average before and after.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import requests

from recon_demo.identities import DEVNET
from recon_demo.worlds.streaks import oracle_environment
from reconciliation_pipeline import localenv
from reconciliation_pipeline.core.cadences import NIGHTLY_JOB

LAUNCH_BACKFILL = """mutation($p: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $p) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""


def _days(back_from: int) -> list[str]:
    today = datetime.now(UTC).date()
    return [(today - timedelta(days=n)).isoformat() for n in (back_from + 1, back_from)]


def launch_with_cli(days: list[str], env: dict[str, str]) -> str:
    output = subprocess.run(
        [str(Path(sys.executable).parent / "dagster"), "job", "backfill", "-w",
         str(localenv.PROJECT_ROOT / "workspace.yaml"), "-j", NIGHTLY_JOB, "--partitions", ",".join(days),
         "--noprompt"], env={**os.environ, **env}, cwd=env["DAGSTER_HOME"], capture_output=True, text=True,
        check=True).stdout
    found = re.search(r"Launched backfill job `(\w+)`", output)
    if found is None:
        raise RuntimeError(f"dagster job backfill did not launch: {output[-2000:]}")
    return found.group(1)


def launch_with_ui(days: list[str], ui_url: str) -> str:
    params = {"selector": {"partitionSetName": f"{NIGHTLY_JOB}_partition_set",
                           "repositorySelector": {"repositoryLocationName": "reconciliation_pipeline",
                                                  "repositoryName": "__repository__"}},
              "partitionNames": days}
    body = requests.post(f"{ui_url}/graphql", json={"query": LAUNCH_BACKFILL, "variables": {"p": params}},
                         timeout=60).json()["data"]["launchPartitionBackfill"]
    if body["__typename"] != "LaunchBackfillSuccess":
        raise RuntimeError(f"the UI did not launch the backfill: {body}")
    return body["backfillId"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ui-url", required=True, help="make ui's URL (it prints it)")
    parser.add_argument("--via", choices=("cli", "ui"), default="cli")
    parser.add_argument("--days-back", type=int, default=2, help="the later of the two days, in days before today")
    args = parser.parse_args()
    # The CLI builds the runs' plan from the pipeline's variables (the secrets' too); the runs themselves
    # execute in processes make ui's daemon starts, with make ui's environment.
    env = localenv.resolve_environment(os.environ, {**DEVNET.environment(), **oracle_environment(),
                                                    "SOROBAN_RPC_URL": "http://127.0.0.1:8765"})
    os.environ.update(env)
    days = _days(args.days_back)
    load_before = os.getloadavg()[0]
    with dg.DagsterInstance.get() as instance:
        started = time.monotonic()
        backfill_id = launch_with_cli(days, env) if args.via == "cli" else launch_with_ui(days, args.ui_url)
        launched = time.monotonic() - started
        while True:
            runs = instance.get_runs(filters=dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
            if len(runs) == len(days) and all(run.is_finished for run in runs):
                break
            time.sleep(0.25)
        elapsed = time.monotonic() - started
        records = [instance.get_run_record_by_id(run.run_id) for run in runs]
    wall_start = time.time() - elapsed
    print(f"2-day backfill of {NIGHTLY_JOB} {days} via {args.via}: {elapsed:.1f} s from launch to both runs "
          f"finished (launch call {launched:.1f} s); "
          + "; ".join(f"run {r.dagster_run.run_id[:8]} {r.dagster_run.status.value}: started after "
                      f"{r.start_time - wall_start:.1f} s, ran {r.end_time - r.start_time:.1f} s" for r in records)
          # The machine's load says how far a figure is the code's and how far its neighbours'.
          + f"; load average {load_before:.2f} before, {os.getloadavg()[0]:.2f} after")
    return 0 if all(r.dagster_run.status == dg.DagsterRunStatus.SUCCESS for r in records) else 1


if __name__ == "__main__":
    sys.exit(main())
