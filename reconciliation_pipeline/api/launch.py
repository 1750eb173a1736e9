"""Launching a domain's reconciliation as a run of the Dagster instance.

A run is submitted to the Dagster webserver (its GraphQL API, through the
`dagster-graphql` client), so it is queued, launched and recorded like any
run: visible in the UI, subject to the instance's run coordinator and
launcher. What runs is the domain's primary scope (its first in the spec): the
scope's job (the shared nightly or every-5-minutes job, or its own), restricted
to that domain's assets, for a partition when the scope is partitioned. A dry
run plans repairs without applying them and leaves out the steps that write on
chain (they need the signing resource); a run that is not dry applies the
planned repairs (compare-and-swap, audited).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from reconciliation_pipeline.catalog import built_domains
from reconciliation_pipeline.core.cadences import FREQUENT_JOB, NIGHTLY_JOB
from reconciliation_pipeline.core.spec import Cadence, Partitioning

DRY_RUN_TAG = "recon/dry_run"
LAUNCHED_BY_TAG = "recon/launched_by"
PARTITION_TAG = "dagster/partition"
CHAIN_WRITING_RESOURCES = frozenset({"streak_oracle"})
"""A step that needs one of these signs and sends transactions: a dry run leaves it out."""


class LaunchError(RuntimeError):
    """The run could not be submitted (the webserver refused it or cannot be reached)."""


class RunNotFound(LookupError):
    pass


@dataclass(frozen=True)
class LaunchPlan:
    domain: str
    scope: str
    job_name: str
    asset_keys: tuple[str, ...]
    writes_chain: tuple[str, ...]
    repairs_asset: str | None
    partitioned: bool

    def selection(self, dry_run: bool) -> list[str]:
        return [k for k in self.asset_keys if not (dry_run and k in self.writes_chain)]

    def run_config(self, dry_run: bool) -> dict[str, Any]:
        if self.repairs_asset is None:
            return {}
        return {"ops": {self.repairs_asset: {"config": {"apply": not dry_run, "dry_run": dry_run}}}}


@functools.cache
def launch_plans() -> dict[str, LaunchPlan]:
    plans: dict[str, LaunchPlan] = {}
    for domain, built in built_domains().items():
        scope = built.spec.scopes[0]
        job = (NIGHTLY_JOB if scope.cadence is Cadence.NIGHTLY else FREQUENT_JOB if scope.cadence is Cadence.FREQUENT
               else scope.jobs[0].name)
        assets = built.assets(scope.name)
        keys = tuple(a.key.to_user_string() for a in assets)
        writes = tuple(a.key.to_user_string() for a in assets
                       if set(a.required_resource_keys) & CHAIN_WRITING_RESOURCES)
        repairs = next((k for k in keys if k.endswith("_repairs")), None)
        plans[domain] = LaunchPlan(domain=domain, scope=scope.name, job_name=job, asset_keys=keys,
                                   writes_chain=writes, repairs_asset=repairs,
                                   partitioned=scope.partitioning is not Partitioning.NONE)
    return plans


def default_partition(now: datetime | None = None) -> str:
    """The UTC day that just ended: what the nightly schedule reconciles."""
    return ((now or datetime.now(UTC)) - timedelta(days=1)).strftime("%Y-%m-%d")


class DagsterRuns:
    """Submit and read runs through a Dagster webserver's GraphQL API."""

    def __init__(self, webserver_url: str, timeout_s: int = 30) -> None:
        from dagster_graphql import DagsterGraphQLClient

        parts = urlsplit(webserver_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("DAGSTER_WEBSERVER_URL must be an http(s) URL of the Dagster webserver")
        self._client = DagsterGraphQLClient(parts.hostname, port_number=parts.port, use_https=parts.scheme == "https",
                                            timeout=timeout_s, path_prefix=parts.path.rstrip("/"))

    def submit(self, plan: LaunchPlan, *, dry_run: bool, partition: str | None) -> str:
        from dagster_graphql import DagsterGraphQLClientError

        tags = {DRY_RUN_TAG: str(dry_run).lower(), LAUNCHED_BY_TAG: "api"}
        if partition is not None:
            tags[PARTITION_TAG] = partition
        try:
            return self._client.submit_job_execution(plan.job_name, run_config=plan.run_config(dry_run), tags=tags,
                                                     asset_selection=plan.selection(dry_run))
        except DagsterGraphQLClientError as error:
            # The client's message quotes the whole query; the first line says what went wrong.
            raise LaunchError(f"the Dagster webserver did not launch {plan.job_name}: "
                              f"{str(error).splitlines()[0]}") from None

    def status(self, run_id: str) -> str:
        from dagster_graphql import DagsterGraphQLClientError

        try:
            return self._client.get_run_status(run_id).value
        except DagsterGraphQLClientError as error:
            if "NotFound" in str(error):
                raise RunNotFound(run_id) from None
            raise LaunchError(f"the Dagster webserver could not say: {str(error).splitlines()[0]}") from None
