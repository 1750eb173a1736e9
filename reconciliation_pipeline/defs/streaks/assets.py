"""Streaks assets: recomputed streaks, the stored projection, the chain's profiles,
their drift, the projection repairs and the chain sync.

Partitions and time: the newest daily partition is the live one. Its runs (the
nightly job, and the sensor's runs for changed users) compute streaks as of the
moment the run starts and may repair the projection and sync the chain. An
older partition is a backfill: streaks are recomputed as of that date in each
user's own timezone, which reproduces that day exactly, and nothing is compared
or written (today's projection and chain say nothing about that day).
"""


from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

import dagster as dg
import pandas as pd

from reconciliation_pipeline.chain.addresses import valid_address_mask
from reconciliation_pipeline.core import sql
from reconciliation_pipeline.core.asset_support import RepairConfig, markdown_table, repair_step
from reconciliation_pipeline.core.drift_store import RunInfo, persist_domain_run
from reconciliation_pipeline.core.findings import concat_findings, empty_findings
from reconciliation_pipeline.core.metadata import frame_metadata, persisted_run_metadata
from reconciliation_pipeline.core.snapshots import snapshot_chain
from reconciliation_pipeline.defs.streaks import reconcile
from reconciliation_pipeline.defs.streaks.engine import compute_streaks
from reconciliation_pipeline.defs.streaks.oracle import StreakOracleResource
from reconciliation_pipeline.defs.streaks.rules import StreakRulesResource
from reconciliation_pipeline.defs.streaks.spec import DOMAIN, PLAYER_SPEC, PROJECTION_SPEC, WALLET
from reconciliation_pipeline.defs.streaks.sync import ATTEMPT_COLUMNS, SyncTarget, sync_players
from reconciliation_pipeline.partitions import daily_partitions
from reconciliation_pipeline.resources import (
    PostgresResource,
    ReconSettingsResource,
    SorobanRpcResource,
    StellarContractsResource,
)

GROUP = "streaks"
PROJECTION_CHECK = "projection_invariants"


class StreakScopeConfig(dg.Config):
    """Which participants a run covers: everyone (empty), or the users a sensor saw change."""

    user_ids: list[int] = []


@dataclass(frozen=True)
class AsOf:
    """When streaks are evaluated: an instant (the live run's start) or a past date (a backfill)."""

    value: datetime | date

    @property
    def live(self) -> bool:
        return isinstance(self.value, datetime)

    @property
    def label(self) -> str:
        return self.value.isoformat() if self.live else f"{self.value.isoformat()} (each user's local day)"

    @property
    def sessions_cutoff(self) -> datetime:
        """No session starting at or after this instant can count for anyone."""
        if isinstance(self.value, datetime):
            return self.value
        # Every zone's midnight ending day D falls before D + 2 at 00:00 UTC.
        return datetime.combine(self.value, time(0), UTC) + timedelta(days=2)


def resolve_as_of(window: dg.TimeWindow, now: datetime) -> AsOf:
    """The newest partition (its day ended less than a day ago) is live; older ones are backfills."""
    return AsOf(now if now < window.end + timedelta(days=1) else window.start.date())


def _as_of(frame: pd.DataFrame) -> AsOf:
    return frame.attrs["as_of"]


def _run_info(context: dg.AssetExecutionContext, scoped: bool) -> RunInfo:
    """A scoped (sensor) run never replaces the partition's complete findings."""
    return RunInfo(run_id=context.run_id, job_name=context.job_name,
                   partition_key=None if scoped else context.partition_key)


def _historical(as_of: AsOf) -> dict[str, str]:
    return {"mode": f"backfill as of {as_of.label}: recomputed only; live runs compare and write"}


@dg.asset(
    group_name=GROUP,
    partitions_def=daily_partitions,
    kinds={"postgres", "pandas"},
    check_specs=[dg.AssetCheckSpec(PROJECTION_CHECK, asset="db_user_streaks",
                                   description="stored rows: counts >= 0, current <= longest <= qualified days")],
)
# No return annotation: with check_specs Dagster reads one as the type of every output.
def db_user_streaks(context: dg.AssetExecutionContext, config: StreakScopeConfig, postgres: PostgresResource):  # noqa: ANN201
    """Every streak participant as the app stores them: wallet, timezone and the
    `user_streaks` projection the app shows (current and longest streak, last
    qualified day, qualified days). This is what the app believes; the session
    log decides whether it is right."""
    scope = sorted(set(config.user_ids)) or None
    as_of = resolve_as_of(context.partition_time_window, datetime.now(UTC))
    snapshot_at = datetime.now(UTC)
    with postgres.engine.connect() as connection:
        result = connection.execute(sql.query(PROJECTION_SPEC.snapshot_query), {"user_ids": scope})
        frame = pd.DataFrame(result.fetchall(), columns=list(result.keys()), dtype=object)
    frame = reconcile.clean_db_frame(frame)
    frame.attrs.update(as_of=as_of, scope=scope, snapshot_at=snapshot_at.isoformat())
    violations = reconcile.stored_invariant_findings(frame)
    return dg.MaterializeResult(
        value=frame,
        metadata={
            **frame_metadata(frame),
            "as_of": as_of.label,
            "live": as_of.live,
            "scope": "all participants" if scope is None else f"{len(scope)} changed users",
            "users_without_wallet": int(frame[WALLET].isna().sum()),
            "users_without_projection": int((~frame["has_projection"]).sum()),
        },
        check_results=[
            dg.AssetCheckResult(
                check_name=PROJECTION_CHECK,
                passed=violations.empty,
                severity=dg.AssetCheckSeverity.WARN,
                metadata={
                    "violations": len(violations),
                    "sample": markdown_table(violations[["entity_id", "field", "db_value"]],
                                             "Every stored row is self-consistent."),
                },
            )
        ],
    )


@dg.asset(group_name=GROUP, partitions_def=daily_partitions, kinds={"postgres", "pandas"})
def computed_user_streaks(
    context: dg.AssetExecutionContext,
    postgres: PostgresResource,
    streak_rules: StreakRulesResource,
    db_user_streaks: pd.DataFrame,
) -> pd.DataFrame:
    """The truth about each participant's streaks, recomputed from the immutable
    focus-session log (late sessions included) in their own timezone: current
    streak, longest streak, last qualified day and number of qualified days."""
    as_of = _as_of(db_user_streaks)
    scope = db_user_streaks.attrs["scope"]
    with postgres.engine.connect() as connection:
        result = connection.execute(sql.query("snapshots/streaks/focus_sessions.sql"),
                                    {"cutoff": as_of.sessions_cutoff, "user_ids": scope})
        sessions = pd.DataFrame(result.fetchall(), columns=list(result.keys()), dtype=object)
    streaks = compute_streaks(sessions, db_user_streaks[["user_id", "timezone"]], as_of=as_of.value,
                              qualifying_minutes=streak_rules.qualifying_minutes)
    streaks.attrs.update(db_user_streaks.attrs)
    valid = streaks[streaks["timezone_valid"]]
    context.add_output_metadata(
        {
            **frame_metadata(streaks),
            "as_of": as_of.label,
            "sessions_read": len(sessions),
            "qualifying_minutes": streak_rules.qualifying_minutes,
            "users_with_current_streak": int((valid["current_streak"] > 0).sum()),
            "users_with_unknown_timezone": int((~streaks["timezone_valid"]).sum()),
        }
    )
    return streaks


@dg.asset(group_name=GROUP, partitions_def=daily_partitions, kinds={"stellar", "pandas"})
def chain_player_profiles(
    context: dg.AssetExecutionContext,
    soroban_rpc: SorobanRpcResource,
    contracts: StellarContractsResource,
    db_user_streaks: pd.DataFrame,
    computed_user_streaks: pd.DataFrame,
) -> pd.DataFrame:
    """The streak contract's `PlayerProfile` (current streak, IQ level) of every
    participant with a valid wallet, read in batches of 200 keys with the ledger
    each was read at; wallets not registered on chain are kept as `missing`."""
    as_of = _as_of(db_user_streaks)
    players = reconcile.player_frame(db_user_streaks, computed_user_streaks)
    compared = reconcile.comparable_players(players, valid_address_mask(players[WALLET]))
    wallets = list(compared[WALLET]) if as_of.live else []
    with soroban_rpc.reader() as reader:
        frame = snapshot_chain(reader, PLAYER_SPEC, contracts.streak_contract_id, wallets)
    statuses = frame["read_status"].value_counts()
    context.add_output_metadata(
        {
            **frame_metadata(frame),
            **({} if as_of.live else _historical(as_of)),
            "ledger_sequence": frame.attrs.get("ledger_sequence"),
            "rpc_requests": frame.attrs.get("rpc_requests", 0),
            "entries_ok": int(statuses.get("ok", 0)),
            "entries_missing": int(statuses.get("missing", 0)),
            "entries_unreadable": int(statuses.get("error", 0)),
        }
    )
    return frame


@dg.asset(group_name=GROUP, partitions_def=daily_partitions, kinds={"postgres", "pandas"})
def streak_discrepancies(
    context: dg.AssetExecutionContext,
    postgres: PostgresResource,
    recon_settings: ReconSettingsResource,
    db_user_streaks: pd.DataFrame,
    computed_user_streaks: pd.DataFrame,
    chain_player_profiles: pd.DataFrame,
) -> pd.DataFrame:
    """Where the app's projection or the streak contract disagrees with the session
    log: stale projection values (PROJECTION_DRIFT), players behind on chain
    (VALUE_MISMATCH), wallets not registered (MISSING_ON_CHAIN) or invalid
    (INVALID_ADDRESS), and rows that contradict themselves. Persisted to
    `recon.discrepancies` and folded into `recon.drift_incidents`."""
    as_of = _as_of(db_user_streaks)
    if not as_of.live:
        context.add_output_metadata(_historical(as_of))
        return empty_findings()
    started_at = datetime.now(UTC)
    players = reconcile.player_frame(db_user_streaks, computed_user_streaks)
    compared = reconcile.comparable_players(players, valid_address_mask(players[WALLET]))
    findings = concat_findings(
        [
            reconcile.projection_findings(db_user_streaks, computed_user_streaks, as_of.label),
            reconcile.timezone_findings(computed_user_streaks),
            reconcile.stored_invariant_findings(db_user_streaks),
            reconcile.shared_wallet_findings(players),
            reconcile.chain_findings(players, compared, chain_player_profiles),
        ]
    )
    checked, unchecked = reconcile.checked_entities(computed_user_streaks, compared, chain_player_profiles)
    scoped = db_user_streaks.attrs["scope"] is not None
    summary = persist_domain_run(
        postgres.engine,
        _run_info(context, scoped),
        DOMAIN,
        findings,
        checked=checked,
        unchecked_count=unchecked,
        ledger_sequence=chain_player_profiles.attrs.get("ledger_sequence"),
        db_snapshot_at=datetime.fromisoformat(db_user_streaks.attrs["snapshot_at"]),
        started_at=started_at,
        policy=recon_settings.incident_policy(),
    )
    context.log.info(f"streaks: {summary.findings} findings ({summary.status}); incidents confirmed "
                     f"{summary.confirmed}, resolved {summary.resolved}")
    context.add_output_metadata(
        {
            **persisted_run_metadata(findings, summary, len(checked), unchecked),
            "as_of": as_of.label,
            "users_without_wallet": int(db_user_streaks[WALLET].isna().sum()),
            "ledger_sequence": chain_player_profiles.attrs.get("ledger_sequence"),
        }
    )
    return findings


@dg.asset(group_name=GROUP, partitions_def=daily_partitions, kinds={"postgres"})
def user_streak_repairs(
    context: dg.AssetExecutionContext,
    config: RepairConfig,
    postgres: PostgresResource,
    streak_discrepancies: pd.DataFrame,
) -> dg.MaterializeResult:
    """Repairs of the `user_streaks` projection toward the session log: planned into
    `recon.repairs` on every live run, applied with compare-and-swap (a concurrent
    app write wins) when the run's config sets `apply` and not `dry_run`, each with
    its audit row. Re-running never applies a repair twice."""
    return repair_step(context, config, postgres.engine, DOMAIN, reconcile.plan_projection_repairs(streak_discrepancies))


ORACLE_POOL = "streak_oracle"
"""Concurrency pool of the sync: limit it to 1 so two runs never send for the oracle at once."""


@dg.asset(group_name=GROUP, partitions_def=daily_partitions, kinds={"stellar", "postgres"}, pool=ORACLE_POOL)
def streak_syncs(
    context: dg.AssetExecutionContext,
    postgres: PostgresResource,
    soroban_rpc: SorobanRpcResource,
    contracts: StellarContractsResource,
    streak_oracle: StreakOracleResource,
    streak_discrepancies: pd.DataFrame,
) -> dg.MaterializeResult:
    """The chain made to match the database: for each registered player whose
    on-chain streak differs, `sync_streak` signed by the oracle (when
    STREAK_SYNC_ENABLED), or the write it would make recorded as `planned`.
    Every attempt is a row in `recon.streak_syncs` with its transaction hash."""
    candidates = reconcile.sync_candidates(streak_discrepancies)
    target = SyncTarget(contract_id=contracts.streak_contract_id, run_id=context.run_id)
    with soroban_rpc.reader() as reader:
        attempts = sync_players(postgres.engine, target, reader, streak_oracle, candidates, context.log.info)
    counts = attempts["status"].value_counts()
    statuses = ("planned", "skipped_match", "pending", "success", "failed", "error")
    return dg.MaterializeResult(
        metadata={
            "mode": "enabled" if streak_oracle.enabled else "disabled (planned only, nothing sent)",
            "oracle": streak_oracle.oracle_address or "(no key loaded)",
            "candidates": len(candidates),
            **{f"syncs/{status}": int(counts.get(status, 0)) for status in statuses},
            "attempts": markdown_table(attempts[list(ATTEMPT_COLUMNS)],
                                       "Every registered player's on-chain streak matches.", rows=50),
        }
    )


STREAKS_ASSETS = [db_user_streaks, computed_user_streaks, chain_player_profiles, streak_discrepancies,
                  user_streak_repairs, streak_syncs]
