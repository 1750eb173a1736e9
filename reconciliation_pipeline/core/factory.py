"""The factory: a `DomainSpec` in, that domain's Dagster definitions out.

For each scope of the domain it builds the same shape of assets, each a thin
wrapper around a step in `core.steps`:

    [plan]  ->  db_<source>  ->  chain_<entity>  ->  [chain_<aggregate>]  ->  <name>_discrepancies  ->  <name>_repairs

plus the domain's own steps where its spec places them, the checks every
domain has (invariants on both sides, `no_critical_drift`, a blocking
`chain_values_copyable` ahead of repairs that copy chain values), the same
metadata keys, the run time budget and metrics, freshness policies on the
every-5-minutes scopes, owners, and the scope's jobs and schedules. Shared
jobs (`core.cadences`) select the assets by their cadence tag.
"""


from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

import dagster as dg
import pandas as pd

from reconciliation_pipeline.chain.reader import ChainReader
from reconciliation_pipeline.core import run_status, steps
from reconciliation_pipeline.core.cadences import (
    CADENCE_TAG,
    PARTITIONS,
    SHARD_COUNT,
    daily_partitions,
    daily_sharded_partitions,
)
from reconciliation_pipeline.core.drift_store import RunInfo
from reconciliation_pipeline.core.results import ChainSnapshot, DbSnapshot, DomainInputs, StepContext, StepResult
from reconciliation_pipeline.core.run_budget import (
    NIGHTLY_RUN_TIME_LIMIT_VARIABLE,
    RUN_TIME_LIMIT_VARIABLE,
    budgeted_reader,
    run_budget,
)
from reconciliation_pipeline.core.scopes import Shard
from reconciliation_pipeline.core.spec import (
    Aggregate,
    Cadence,
    DomainSpec,
    Entity,
    IndexedKeys,
    JobSpec,
    Partitioning,
    Scope,
    Source,
    Step,
)
from reconciliation_pipeline.instance.home import check_instance_storage

CORE_RESOURCES = frozenset({"postgres", "soroban_rpc", "contracts", "settings"})
FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(minutes=15), warn_window=timedelta(minutes=10))
"""Every-5-minutes assets: a reconciliation that silently stops running turns them stale."""
DEFAULT_OWNERS = ("team:data-reliability",)


class RepairConfig(dg.Config):
    """Repairs are planned on every run; applied only when asked, never in a dry run."""

    apply: bool = False
    dry_run: bool = False


class SnapshotConfig(dg.Config):
    """Restrict a run to some entities (a sensor's run for the users that changed); empty: all."""

    only_keys: list[str] = []


@dataclass(frozen=True)
class BuiltDomain:
    spec: DomainSpec
    definitions: dg.Definitions
    assets_by_scope: Mapping[str, tuple[dg.AssetsDefinition, ...]]

    def assets(self, scope: str) -> list[dg.AssetsDefinition]:
        """The assets a run of one scope materializes (for in-process runs and tests)."""
        return list(self.assets_by_scope[scope])


@dataclass(frozen=True)
class _Names:
    """The asset names of one scope."""

    spec: DomainSpec
    scope: Scope

    def db(self, source: str) -> str:
        return f"db_{source}{self.scope.suffix}"

    def chain(self, entity: str) -> str:
        return f"chain_{entity}{self.scope.suffix}"

    def aggregate(self, aggregate: Aggregate) -> str:
        return f"chain_{aggregate.name}" + ("_sharded" if self.sharded else "")

    @property
    def discrepancies(self) -> str:
        return f"{self.spec.findings_asset}{self.scope.suffix}_discrepancies"

    @property
    def repairs(self) -> str:
        return f"{self.spec.repairs_asset}{self.scope.suffix}_repairs"

    @property
    def sharded(self) -> bool:
        return self.scope.partitioning is Partitioning.DAILY_SHARDS

    def of_input(self, name: str) -> str:
        """A step's input name (`db_<source>`, another step, `discrepancies`) as this scope's asset."""
        if name == "discrepancies":
            return self.discrepancies
        if name.startswith("db_"):
            return self.db(name.removeprefix("db_"))
        return name


Role = tuple[str, str]
"""(kind of result, name): `source`, `chain`, `step`, `aggregate`, `plan`, `diff`."""


def _inputs(roles: Mapping[str, Role], values: Mapping[str, Any]) -> DomainInputs:
    inputs = DomainInputs()
    for input_name, value in values.items():
        kind, name = roles[input_name]
        if isinstance(value, dict):  # every shard of a day (a per-day asset of a sharded scope)
            value = _merge_shards(list(value.values()))
        if kind == "source":
            inputs.sources[name] = value
        elif kind == "chain":
            inputs.chains[name] = value
        elif kind == "aggregate":
            inputs.aggregates[name] = value
        elif kind == "plan":
            inputs.plan = value
        elif kind == "diff":
            inputs.diff = value
        else:
            inputs.steps[name] = value
    return inputs


def _merge_shards(parts: list[Any]) -> Any:
    """One day's shards of a snapshot as one snapshot (keys keep their canonical dtype)."""
    first = parts[0]
    frame = pd.concat([p.frame for p in parts], ignore_index=True)
    if isinstance(first, DbSnapshot):
        return replace(first, frame=frame, taken_at=min(p.taken_at for p in parts), scope="every shard of the day",
                       invariant_findings=pd.concat([p.invariant_findings for p in parts], ignore_index=True))
    assert isinstance(first, ChainSnapshot)
    ledgers = [p.ledger_sequence for p in parts if p.ledger_sequence is not None]
    return replace(first, frame=frame, ledger_sequence=max(ledgers, default=None),
                   requests=sum(p.requests for p in parts), failed_batches=sum(p.failed_batches for p in parts))


def _step_context(context: dg.AssetExecutionContext, scope: Scope, *, partitioned: bool, config: Any = None,
                  extra: tuple[str, ...] = ()) -> StepContext:
    check_instance_storage(context.instance)
    resources = context.resources
    settings = resources.settings.resolved()
    frequent = scope.budget == "frequent"
    budget = run_budget(context.instance, context.run.run_id,
                        settings.run_time_limit_s if frequent else settings.nightly_run_time_limit_s,
                        RUN_TIME_LIMIT_VARIABLE if frequent else NIGHTLY_RUN_TIME_LIMIT_VARIABLE)
    rpc = resources.soroban_rpc

    def open_reader(request_slots: AbstractContextManager[Any] | None = None) -> AbstractContextManager[ChainReader]:
        return budgeted_reader(rpc.rpc_url, rpc.reader_settings(), budget, request_slots)

    window, shard, keys = None, None, ()
    if partitioned and (context.has_partition_key or context.has_partition_key_range):
        window = context.partition_time_window
        keys = tuple(context.partition_keys)
        if scope.partitioning is Partitioning.DAILY_SHARDS and context.assets_def.partitions_def is \
                daily_sharded_partitions:
            key = daily_sharded_partitions.get_partition_key_from_str(str(context.partition_key))
            shard = Shard(int(key.keys_by_dimension["shard"]), SHARD_COUNT)
    run = RunInfo(run_id=context.run.run_id, job_name=context.job_name, partition_key=keys[0] if len(keys) == 1 else None)
    return StepContext(
        run=run, engine=resources.postgres.engine, contracts=resources.contracts, settings=settings,
        log=context.log, budget=budget, open_reader=open_reader, partition_window=window, partition_keys=keys,
        shard=shard,
        tags=context.run.tags, config=config, resources={name: getattr(resources, name) for name in extra},
    )


def _config(context: dg.AssetExecutionContext, config_class: type[dg.Config] | None) -> Any:
    if config_class is None:
        return None
    return config_class(**(context.op_execution_context.op_config or {}))


class _ScopeBuilder:
    """Builds the assets of one scope of a domain."""

    def __init__(self, spec: DomainSpec, scope: Scope, defined_steps: dict[str, dg.AssetsDefinition],
                 classes: tuple[Any, ...]) -> None:
        self.spec = spec
        self.scope = scope
        self.names = _Names(spec, scope)
        self.defined_steps = defined_steps
        self.classes = classes
        self.partitions = PARTITIONS[scope.partitioning]
        self.owners = [*(spec.owners or DEFAULT_OWNERS), *scope.owners]
        self.tags = {CADENCE_TAG: scope.cadence.value} if scope.cadence is not Cadence.OWN else {}
        self.freshness = FRESHNESS if scope.budget == "frequent" else None
        self.assets: list[dg.AssetsDefinition] = []
        self.per_day: list[dg.AssetsDefinition] = []
        self.after_findings = ([self.names.repairs] if steps.plans_repairs(spec, scope) else []) + [
            s.name for s in spec.steps_of(scope) if s.post]
        """The steps after the findings step; the last of them in a run sets its status."""

    def asset(
        self,
        name: str,
        run: Callable[[dg.AssetExecutionContext, DomainInputs], steps.Output],
        *,
        ins: Mapping[str, Role],
        description: str,
        kinds: frozenset[str] | set[str],
        checks: list[dg.AssetCheckSpec] | None = None,
        partitions: dg.PartitionsDefinition | None | str = "scope",
        deps: tuple[str, ...] = (),
        config: type[dg.Config] | None = None,
        resources: frozenset[str] = CORE_RESOURCES,
        pool: str | None = None,
        tags: Mapping[str, str] | None = None,
        stores_value: bool = True,
        last: bool = False,
    ) -> dg.AssetsDefinition:
        """`last`: one of the steps after the findings (repairs, a sync); the last of them to end
        gives the domain's run its status in recon.runs."""
        roles = dict(ins)
        domain = self.spec.domain

        def compute(context: dg.AssetExecutionContext, **values: Any):  # noqa: ANN202 - see below
            # No return annotation: with check_specs Dagster reads one as the type of every output.
            engine = context.resources.postgres.engine
            partition_key = str(context.partition_key) if context.has_partition_key else None
            run_status.mark_started(engine, context.run.run_id, domain, context.job_name, partition_key)
            try:
                output = run(context, _inputs(roles, values))
            except Exception as error:
                run_status.mark_failed(engine, context.run.run_id, domain, f"{name}: {type(error).__name__}: {error}")
                raise
            if last:
                run_status.finish_step(engine, context.run.run_id, domain)
            if not stores_value:  # nothing for the IO manager (a range run cannot store one value anyway)
                return dg.MaterializeResult(metadata=output.metadata, check_results=list(output.checks))
            return dg.MaterializeResult(value=output.value, metadata=output.metadata,
                                        check_results=list(output.checks))

        compute.__name__ = name
        return dg.asset(
            name=name,
            ins={input_name: dg.AssetIn(input_name) for input_name in roles},
            deps=list(deps),
            group_name=self.scope.group,
            partitions_def=self.partitions if partitions == "scope" else partitions,  # type: ignore[arg-type]
            kinds=set(kinds),
            description=description,
            check_specs=checks or None,
            config_schema=config.to_config_schema() if config is not None else None,
            required_resource_keys=set(resources),
            owners=self.owners,
            tags=self.tags if tags is None else tags,
            freshness_policy=self.freshness,
            pool=pool,
        )(compute)

    # -- the shape ----------------------------------------------------------------

    def build(self) -> tuple[list[dg.AssetsDefinition], list[dg.AssetsDefinition]]:
        spec, scope, names = self.spec, self.scope, self.names
        plan_role: dict[str, Role] = {}
        if scope.incremental is not None:
            self.assets.append(self._plan())
            plan_role = {scope.incremental.plan_asset: ("plan", "plan")}
        for source in spec.sources_of(scope):
            self.assets.append(self._db(source, plan_role))
        own_steps = [s for s in spec.steps_of(scope) if not s.post]
        for step in own_steps:
            self._step(step)
        for entity in spec.entities_of(scope):
            self.assets.append(self._chain(entity, plan_role))
        aggregates = [a for a in spec.aggregates if scope.aggregates] if scope.incremental is None else []
        if names.sharded:
            for aggregate in aggregates:
                self.per_day += self._sharded_aggregate(aggregate)
            aggregates = []
        else:
            self.assets += [self._aggregate(a) for a in aggregates]
        self.assets.append(self._discrepancies(own_steps, aggregates, plan_role))
        if steps.plans_repairs(spec, scope):
            self.assets.append(self._repairs())
        for step in (s for s in spec.steps_of(scope) if s.post):
            self._step(step)
        return self.assets, self.per_day

    def _context(self, context: dg.AssetExecutionContext, *, partitioned: bool = True, config: Any = None,
                 extra: tuple[str, ...] = ()) -> StepContext:
        return _step_context(context, self.scope, partitioned=partitioned and self.partitions is not None,
                             config=config, extra=extra)

    def _plan(self) -> dg.AssetsDefinition:
        spec, scope = self.spec, self.scope
        assert scope.incremental is not None
        return self.asset(
            scope.incremental.plan_asset,
            lambda context, _: steps.plan_step(self._context(context), spec, scope),
            ins={}, kinds={"stellar"}, description=scope.incremental.description,
        )

    def _db(self, source: Source, plan_role: dict[str, Role]) -> dg.AssetsDefinition:
        spec, scope = self.spec, self.scope

        def run(context: dg.AssetExecutionContext, inputs: DomainInputs) -> steps.Output:
            config = _config(context, SnapshotConfig)
            only = tuple(config.only_keys) if config.only_keys else None
            return steps.db_step(self._context(context), spec, scope, source, inputs.plan, only)

        checks = ([dg.AssetCheckSpec(source.invariants.check, asset=self.names.db(source.name),
                                     description=f"database: {source.invariants.description}")]
                  if source.invariants is not None else None)
        return self.asset(self.names.db(source.name), run, ins=plan_role, kinds={"postgres", "pandas"},
                          description=source.description, checks=checks, config=SnapshotConfig)

    def steps_pending(self, context: dg.AssetExecutionContext) -> int:
        """How many of the steps after the findings this run executes (a run may select a subset)."""
        selected = context.job_def.asset_layer.selected_asset_keys
        return sum(dg.AssetKey(name) in selected for name in self.after_findings)

    def _step(self, step: Step) -> None:
        if step.name in self.defined_steps:
            self.assets.append(self.defined_steps[step.name])
            return
        roles = {self.names.of_input(i): self._role_of(i) for i in step.inputs}

        def run(context: dg.AssetExecutionContext, inputs: DomainInputs) -> steps.Output:
            ctx = self._context(context, partitioned=step.partitioned, config=_config(context, step.config),
                                extra=step.resources)
            result: StepResult = step.run(ctx, inputs)
            return steps.Output(result.value, dict(result.metadata), tuple(result.checks))

        checks = [dg.AssetCheckSpec(name, asset=step.name, description=text) for name, text in step.checks]
        asset = self.asset(
            step.name, run, ins=roles, kinds=step.kinds, description=step.description, checks=checks,
            partitions="scope" if step.partitioned else None, deps=tuple(self.names.of_input(a) for a in step.after),
            config=step.config, resources=CORE_RESOURCES | set(step.resources), pool=step.pool,
            stores_value=step.value, last=step.post,
        )
        self.defined_steps[step.name] = asset
        self.assets.append(asset)

    def _role_of(self, name: str) -> Role:
        if name.startswith("db_"):
            return "source", name.removeprefix("db_")
        if name == "discrepancies":
            return "diff", name
        return "step", name

    def _source_role(self, entity: Entity) -> tuple[str, Role]:
        if any(s.name == entity.source_name for s in self.spec.sources):
            return self.names.db(entity.source_name), ("source", entity.source_name)
        return entity.source, ("step", entity.source_name)

    def _chain(self, entity: Entity, plan_role: dict[str, Role]) -> dg.AssetsDefinition:
        spec, scope = self.spec, self.scope
        source_asset, source_role = self._source_role(entity)
        deps = (entity.discovery.after,) if isinstance(entity.discovery, IndexedKeys) else ()
        checks = ([dg.AssetCheckSpec(entity.chain_invariants.check, asset=self.names.chain(entity.name),
                                     description=f"chain: {entity.chain_invariants.description}")]
                  if entity.chain_invariants is not None else None)
        return self.asset(
            self.names.chain(entity.name),
            lambda context, inputs: steps.chain_step(self._context(context), spec, scope, entity, inputs),
            ins={source_asset: source_role, **plan_role}, kinds={"stellar", "pandas"},
            description=entity.description, checks=checks, deps=deps,
        )

    def _aggregate_ins(self, aggregate: Aggregate) -> dict[str, Role]:
        ins: dict[str, Role] = {}
        for name in aggregate.entities:
            entity = self.spec.entity(name)
            ins[self.names.chain(name)] = ("chain", name)
            source_asset, source_role = self._source_role(entity)
            ins[source_asset] = source_role
        return ins

    def _aggregate(self, aggregate: Aggregate, partitions: Any = "scope") -> dg.AssetsDefinition:
        name = self.names.aggregate(aggregate)
        return self.asset(
            name, lambda context, inputs: steps.aggregate_step(self._context(context), aggregate, inputs),
            ins=self._aggregate_ins(aggregate), kinds={"stellar", "pandas"}, description=aggregate.description,
            checks=[dg.AssetCheckSpec(aggregate.check, asset=name, description=aggregate.check_description)],
            partitions=partitions,
        )

    def _discrepancies_checks(self, name: str, scope: Scope) -> list[dg.AssetCheckSpec]:
        checks = [dg.AssetCheckSpec(steps.NO_CRITICAL_DRIFT, asset=name,
                                    description="no CRITICAL finding (e.g. an escrow short of what it owes, a "
                                    "resolved market paying out on another outcome than its contract)")]
        if steps.copies_chain_values(self.spec, scope):
            checks.append(dg.AssetCheckSpec(
                steps.CHAIN_VALUES_COPYABLE, asset=name, blocking=True,
                description="no planned repair copies a value from a chain entry that breaks the contract's own "
                "invariants; when one would, the repairs do not run"))
        return checks

    def _discrepancies(self, own_steps: list[Step], aggregates: list[Aggregate],
                       plan_role: dict[str, Role]) -> dg.AssetsDefinition:
        spec, scope, names = self.spec, self.scope, self.names
        ins: dict[str, Role] = {**plan_role}
        for source in spec.sources_of(scope):
            ins[names.db(source.name)] = ("source", source.name)
        for entity in spec.entities_of(scope):
            ins[names.chain(entity.name)] = ("chain", entity.name)
        for aggregate in aggregates:
            ins[names.aggregate(aggregate)] = ("aggregate", aggregate.name)
        for step in own_steps:
            if step.value:
                ins[step.name] = ("step", step.name)

        def run(context: dg.AssetExecutionContext, inputs: DomainInputs) -> steps.Output:
            return steps.discrepancies_step(self._context(context), spec, scope, inputs,
                                            context.resources.pushgateway, self.classes, self.steps_pending(context))

        return self.asset(
            names.discrepancies, run, ins=ins, kinds={"postgres", "pandas"},
            description=f"Every disagreement found in {spec.domain}: {spec.description} Typed by drift class, "
            "persisted to recon.discrepancies (a re-run replaces its partition's findings) and folded into "
            "recon.drift_incidents, resolving only incidents of the entities it checked.",
            checks=self._discrepancies_checks(names.discrepancies, scope),
            resources=CORE_RESOURCES | {"pushgateway"},
            deps=tuple(s.name for s in own_steps if not s.value),
        )

    def _repairs(self) -> dg.AssetsDefinition:
        spec = self.spec
        names = self.names

        def run(context: dg.AssetExecutionContext, inputs: DomainInputs) -> steps.Output:
            config = _config(context, RepairConfig)
            assert inputs.diff is not None
            return steps.repairs_step(self._context(context), spec, inputs.diff, config.apply, config.dry_run)

        return self.asset(
            names.repairs, run, ins={names.discrepancies: ("diff", "discrepancies")}, kinds={"postgres"},
            description=f"Repairs of the non-authoritative side in {spec.domain}: planned into recon.repairs on every "
            "run, applied with compare-and-swap (a concurrent application write wins) when the run's config sets "
            "`apply` and not `dry_run`, each with its audit row. Re-running never applies a repair twice.",
            config=RepairConfig, last=True,
        )

    def _sharded_aggregate(self, aggregate: Aggregate) -> list[dg.AssetsDefinition]:
        """A per-day aggregate over every shard of the day, and its own findings asset (`<day>|<label>`)."""
        spec, scope = self.spec, self.scope
        aggregate_asset = self._aggregate(aggregate, partitions=daily_partitions)
        per_day_scope = replace(scope, entities=(), steps=(), repairs=False, partitioning=Partitioning.DAILY)
        name = f"{aggregate.name}_discrepancies"

        def run(context: dg.AssetExecutionContext, inputs: DomainInputs) -> steps.Output:
            ctx = self._context(context)
            ctx = replace(ctx, run=replace(ctx.run, partition_key=f"{ctx.run.partition_key}|{aggregate.label}"))
            return steps.discrepancies_step(ctx, replace(spec, hooks=replace(spec.hooks, findings=None)),
                                            per_day_scope, inputs, context.resources.pushgateway, self.classes)

        findings_asset = self.asset(
            name, run, ins={self.names.aggregate(aggregate): ("aggregate", aggregate.name)},
            kinds={"postgres", "pandas"}, partitions=daily_partitions,
            description=f"{aggregate.description} For the whole day across its shards: findings persisted under "
            f"`<day>|{aggregate.label}` and folded into incidents (resolving only {aggregate.label} incidents).",
            checks=[dg.AssetCheckSpec(steps.NO_CRITICAL_DRIFT, asset=name, description="no CRITICAL finding")],
            resources=CORE_RESOURCES | {"pushgateway"},
        )
        return [aggregate_asset, findings_asset]


def _job(spec: JobSpec, scope: Scope, assets: list[dg.AssetsDefinition],
         per_day: list[dg.AssetsDefinition]) -> tuple[Any, list[dg.ScheduleDefinition]]:
    chosen = per_day if spec.partitioned_by_day else assets
    if spec.only is not None:
        chosen = [a for a in chosen if a.key.to_user_string() in spec.only]
    partitions = daily_partitions if spec.partitioned_by_day else PARTITIONS[scope.partitioning]
    job = dg.define_asset_job(name=spec.name, selection=dg.AssetSelection.assets(*chosen),
                              partitions_def=partitions, description=spec.description)
    schedules = [dg.ScheduleDefinition(name=s.name, job=job, cron_schedule=s.cron, execution_timezone="UTC",
                                       tags=dict(s.tags), default_status=dg.DefaultScheduleStatus.RUNNING,
                                       description=s.description) for s in spec.schedules]
    return job, schedules


def build_domain(spec: DomainSpec) -> BuiltDomain:
    """Every asset, check, job and schedule of one domain, from its spec."""
    classes = steps.drift_classes(spec, spec.produces)
    defined_steps: dict[str, dg.AssetsDefinition] = {}
    assets: list[dg.AssetsDefinition] = []
    by_scope: dict[str, tuple[dg.AssetsDefinition, ...]] = {}
    jobs: list[Any] = []
    schedules: list[dg.ScheduleDefinition] = []
    for scope in spec.scopes:
        scope_assets, per_day = _ScopeBuilder(spec, scope, defined_steps, classes).build()
        by_scope[scope.name] = tuple(scope_assets)
        if per_day:
            by_scope[f"{scope.name}_per_day"] = tuple(per_day)
        assets += [a for a in [*scope_assets, *per_day] if a not in assets]
        for job_spec in scope.jobs:
            job, job_schedules = _job(job_spec, scope, scope_assets, per_day)
            jobs.append(job)
            schedules += job_schedules
    return BuiltDomain(spec, dg.Definitions(assets=assets, jobs=jobs, schedules=schedules), by_scope)
