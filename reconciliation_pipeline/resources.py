"""The resources every asset uses. Each is bound exactly once, in `definitions.py`.

What has no sensible default (URLs, contract ids, the issuer) arrives as an
`EnvVar` resolved when a run starts. A tuning field left unset (None) takes its
variable's value when the run starts, else the documented default
(`settings.setting_text`), whether or not a launcher or `.env` set it. A
missing or invalid value fails the run at start with a message naming the
variable.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import dagster as dg
import sqlalchemy as sa
from pydantic import PrivateAttr
from sqlalchemy.engine import Engine, make_url
from stellar_sdk import StrKey

from reconciliation_pipeline.chain.keys import sac_contract_id
from reconciliation_pipeline.chain.reader import ChainReader, ReaderSettings
from reconciliation_pipeline.core import sql
from reconciliation_pipeline.core.alerts import AlertingResource
from reconciliation_pipeline.core.drift_store import IncidentPolicy
from reconciliation_pipeline.core.metrics import PushgatewayResource
from reconciliation_pipeline.core.missing_guard import MissingGuard
from reconciliation_pipeline.core.step_outputs import StepOutputsResource
from reconciliation_pipeline.settings import configured, setting_int, setting_text


def sqlalchemy_url(database_url: str, driver: str = "psycopg") -> str:
    """`postgresql://...` as a SQLAlchemy URL with an explicit driver."""
    try:
        url = make_url(database_url)
    except Exception as error:
        raise ValueError("DATABASE_URL is not a valid database URL") from error
    if url.get_backend_name() not in ("postgresql", "postgres"):
        raise ValueError(f"DATABASE_URL must be a postgresql:// URL, got scheme {url.drivername!r}")
    return url.set(drivername=f"postgresql+{driver}").render_as_string(hide_password=False)


class PostgresResource(dg.ConfigurableResource):
    """The application database, which also holds the `recon` schema. A run starts only when that
    schema has every migration of this release (`recon migrate` applies them)."""

    database_url: str
    _engine: Engine | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._engine = sa.create_engine(sqlalchemy_url(self.database_url), pool_pre_ping=True)
        try:
            sql.require_migrated(self._engine)
        except sql.SchemaNotMigratedError as error:
            raise dg.DagsterInvariantViolationError(str(error)) from None

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._engine is not None:
            self._engine.dispose()

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = sa.create_engine(sqlalchemy_url(self.database_url), pool_pre_ping=True)
        return self._engine


class SorobanRpcResource(dg.ConfigurableResource):
    """Read-only Soroban RPC access. It holds no key: nothing using it can sign or send."""

    rpc_url: str
    max_in_flight: int | None = None
    """None: RPC_MAX_IN_FLIGHT (default 5), like every tuning field below."""
    max_attempts: int | None = None
    backoff_initial_ms: int | None = None
    request_timeout_ms: int | None = None
    batch_size: int = 200
    max_response_bytes: int | None = None

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if not self.rpc_url.startswith(("http://", "https://")):
            raise dg.DagsterInvariantViolationError(
                f"SOROBAN_RPC_URL must be an http(s) URL, got {self.rpc_url!r}"
            )
        self.reader_settings()

    def reader_settings(self) -> ReaderSettings:
        max_response_bytes = configured(self.max_response_bytes, "RPC_MAX_RESPONSE_BYTES", setting_int)
        if max_response_bytes < 1024:
            raise dg.DagsterInvariantViolationError(
                f"RPC_MAX_RESPONSE_BYTES must be at least 1024, got {max_response_bytes}")
        return ReaderSettings(
            batch_size=self.batch_size,
            max_in_flight=configured(self.max_in_flight, "RPC_MAX_IN_FLIGHT", setting_int),
            max_attempts=configured(self.max_attempts, "RPC_MAX_ATTEMPTS", setting_int),
            backoff_initial_s=configured(self.backoff_initial_ms, "RPC_BACKOFF_INITIAL_MS", setting_int) / 1000,
            request_timeout_s=configured(self.request_timeout_ms, "RPC_REQUEST_TIMEOUT_MS", setting_int) / 1000,
            max_response_bytes=max_response_bytes,
        )

    @contextmanager
    def reader(self) -> Iterator[ChainReader]:
        reader = ChainReader(self.rpc_url, self.reader_settings())
        try:
            yield reader
        finally:
            reader.close()


_CONTRACT_ENV = {
    "stream_contract_id": "STREAM_CONTRACT_ID",
    "lending_contract_id": "LENDING_CONTRACT_ID",
    "amm_contract_id": "AMM_CONTRACT_ID",
    "streak_contract_id": "STREAK_CONTRACT_ID",
}


class StellarContractsResource(dg.ConfigurableResource):
    """Which contracts and assets the reconciled apps use (CONTRACTS.md)."""

    stream_contract_id: str
    lending_contract_id: str
    amm_contract_id: str
    streak_contract_id: str
    usdc_issuer: str
    usdc_asset_code: str | None = None
    """None: USDC_ASSET_CODE (default USDC)."""
    network_passphrase: str | None = None
    """None: STELLAR_NETWORK_PASSPHRASE."""

    def usdc_code(self) -> str:
        return configured(self.usdc_asset_code, "USDC_ASSET_CODE", setting_text)

    def passphrase(self) -> str:
        return configured(self.network_passphrase, "STELLAR_NETWORK_PASSPHRASE", setting_text)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        for field, variable in _CONTRACT_ENV.items():
            value = getattr(self, field)
            if not StrKey.is_valid_contract(value):
                raise dg.DagsterInvariantViolationError(f"{variable} is not a valid contract id (C...): {value!r}")
        if not StrKey.is_valid_ed25519_public_key(self.usdc_issuer):
            raise dg.DagsterInvariantViolationError(f"USDC_ISSUER is not a valid account id (G...): {self.usdc_issuer!r}")

    @property
    def usdc_contract_id(self) -> str:
        """The USDC Stellar Asset Contract, derived from the asset and the network."""
        return sac_contract_id(self.usdc_code(), self.usdc_issuer, self.passphrase())


def _share(text: str, variable: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0.0 < value <= 1.0:
        raise dg.DagsterInvariantViolationError(
            f"{variable} must be a share of keys between 0 and 1 (e.g. 0.5), got {text!r}")
    return value


@dataclass(frozen=True)
class ReconSettings:
    """The tuning settings of one run, resolved and checked when it starts."""

    confirm_after_runs: int
    confirm_grace_minutes: int
    run_time_limit_s: int
    """Whole-run limit of the every-few-minutes scopes."""
    nightly_run_time_limit_s: int
    """Whole-run limit of the nightly (and backfill and sensor) scopes."""
    odds_mismatch_threshold: str
    """Text: there is no exact float form of a setting, and parsing here gives an error that names it."""
    usdc_balance_tolerance: int
    """Base units (1 USDC = 10,000,000): 10 is 0.000001 USDC."""
    max_missing_share: str
    """A read whose share of keys missing on chain is above this fails."""
    missing_share_jump: str
    """A read whose missing share is this far above the entity's recent median fails."""
    streak_qualifying_minutes: int
    ttl_warning_ledgers: int
    """A live entry whose TTL runs out within this many ledgers is TTL_EXPIRING."""
    origin_max_ledgers: int
    """Ledgers a run fetches to name the transaction behind chain-side findings."""
    replay_max_ledgers: int
    """Ledgers a run replays from getLedgers metadata beyond getEvents's window."""
    sweep_chunk_rows: int
    """Rows per chunk of a streaming full sweep (`core.streaming`): what memory holds of each
    side at a time, a few chunks deep. 0 turns streaming off: full sweeps hold whole frames."""
    sweep_workers: int
    """Processes that diff a streaming sweep's chunks: 0 one per usable core, 1 none (threads of the run's process)."""

    def __post_init__(self) -> None:
        self.incident_policy()
        self.odds_threshold()
        self.missing_guard()
        for value, variable in ((self.run_time_limit_s, "RUN_TIME_LIMIT_SECONDS"),
                                (self.nightly_run_time_limit_s, "NIGHTLY_RUN_TIME_LIMIT_SECONDS")):
            if value <= 0:
                raise dg.DagsterInvariantViolationError(f"{variable} must be a positive number of seconds, got {value}")
        if self.sweep_chunk_rows < 0:
            raise dg.DagsterInvariantViolationError(
                f"RECON_SWEEP_CHUNK_ROWS must be 0 (no streaming) or a positive number of rows, got {self.sweep_chunk_rows}")
        if self.sweep_workers < 0:
            raise dg.DagsterInvariantViolationError(
                f"RECON_SWEEP_WORKERS must be 0 (one per CPU core) or a positive number of processes, got "
                f"{self.sweep_workers}")
        if self.usdc_balance_tolerance < 0:
            raise dg.DagsterInvariantViolationError(
                f"USDC_BALANCE_TOLERANCE must be a non-negative number of base units, got {self.usdc_balance_tolerance}"
            )
        for value, variable in ((self.ttl_warning_ledgers, "TTL_WARNING_LEDGERS"),
                                (self.origin_max_ledgers, "ORIGIN_MAX_LEDGERS"),
                                (self.replay_max_ledgers, "REPLAY_MAX_LEDGERS")):
            if value < 0:
                raise dg.DagsterInvariantViolationError(f"{variable} must be a non-negative number of ledgers, got {value}")
        if self.streak_qualifying_minutes < 1:
            raise dg.DagsterInvariantViolationError(
                f"STREAK_QUALIFYING_MINUTES must be at least 1, got {self.streak_qualifying_minutes}"
            )

    def incident_policy(self) -> IncidentPolicy:
        try:
            return IncidentPolicy(confirm_after_runs=self.confirm_after_runs, grace_minutes=self.confirm_grace_minutes)
        except ValueError as error:
            raise dg.DagsterInvariantViolationError(
                f"RECON_CONFIRM_AFTER_RUNS must be at least 1 and RECON_CONFIRM_GRACE_MINUTES at least 0: {error}"
            ) from error

    def odds_threshold(self) -> float:
        """The absolute YES-odds gap above which markets disagree, in (0, 1)."""
        try:
            value = float(self.odds_mismatch_threshold)
        except ValueError:
            value = math.nan
        if not 0.0 < value < 1.0:
            raise dg.DagsterInvariantViolationError(
                "ODDS_MISMATCH_THRESHOLD must be an absolute probability between 0 and 1 (e.g. 0.01), "
                f"got {self.odds_mismatch_threshold!r}"
            )
        return value

    def missing_guard(self) -> MissingGuard:
        """The mass-missing guard's ceiling and jump, each a share in (0, 1]."""
        return MissingGuard(max_share=_share(self.max_missing_share, "RECON_MAX_MISSING_SHARE"),
                            jump=_share(self.missing_share_jump, "RECON_MISSING_SHARE_JUMP"))


class ReconSettingsResource(dg.ConfigurableResource):
    """Every tuning setting of the reconciliations. A field left None takes its variable's value
    when the run starts, else the documented default (README, `settings.ENV_SETTINGS`)."""

    confirm_after_runs: int | None = None
    confirm_grace_minutes: int | None = None
    run_time_limit_s: int | None = None
    nightly_run_time_limit_s: int | None = None
    odds_mismatch_threshold: str | None = None
    usdc_balance_tolerance: int | None = None
    max_missing_share: str | None = None
    missing_share_jump: str | None = None
    streak_qualifying_minutes: int | None = None
    """A deployment-wide rule, not run config: a run with another threshold would "repair"
    every projection to a rule the app does not use."""
    ttl_warning_ledgers: int | None = None
    origin_max_ledgers: int | None = None
    replay_max_ledgers: int | None = None
    sweep_chunk_rows: int | None = None
    sweep_workers: int | None = None

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self.resolved()

    def resolved(self) -> ReconSettings:
        return ReconSettings(
            confirm_after_runs=configured(self.confirm_after_runs, "RECON_CONFIRM_AFTER_RUNS", setting_int),
            confirm_grace_minutes=configured(self.confirm_grace_minutes, "RECON_CONFIRM_GRACE_MINUTES", setting_int),
            run_time_limit_s=configured(self.run_time_limit_s, "RUN_TIME_LIMIT_SECONDS", setting_int),
            nightly_run_time_limit_s=configured(self.nightly_run_time_limit_s, "NIGHTLY_RUN_TIME_LIMIT_SECONDS",
                                                setting_int),
            odds_mismatch_threshold=configured(self.odds_mismatch_threshold, "ODDS_MISMATCH_THRESHOLD", setting_text),
            usdc_balance_tolerance=configured(self.usdc_balance_tolerance, "USDC_BALANCE_TOLERANCE", setting_int),
            max_missing_share=configured(self.max_missing_share, "RECON_MAX_MISSING_SHARE", setting_text),
            missing_share_jump=configured(self.missing_share_jump, "RECON_MISSING_SHARE_JUMP", setting_text),
            streak_qualifying_minutes=configured(self.streak_qualifying_minutes, "STREAK_QUALIFYING_MINUTES",
                                                 setting_int),
            ttl_warning_ledgers=configured(self.ttl_warning_ledgers, "TTL_WARNING_LEDGERS", setting_int),
            origin_max_ledgers=configured(self.origin_max_ledgers, "ORIGIN_MAX_LEDGERS", setting_int),
            replay_max_ledgers=configured(self.replay_max_ledgers, "REPLAY_MAX_LEDGERS", setting_int),
            sweep_chunk_rows=configured(self.sweep_chunk_rows, "RECON_SWEEP_CHUNK_ROWS", setting_int),
            sweep_workers=configured(self.sweep_workers, "RECON_SWEEP_WORKERS", setting_int),
        )


def build_resources() -> dict[str, dg.ConfigurableResource | dg.ConfigurableIOManagerFactory]:
    """Every resource key, bound once: the required variables as `EnvVar`s, the rest read (with their
    defaults) by each resource when a run starts."""
    # The signing resource lives beside the streak sync, the only step that uses it.
    from reconciliation_pipeline.defs.streaks.oracle import StreakOracleResource

    return {
        "postgres": PostgresResource(database_url=dg.EnvVar("DATABASE_URL")),
        "soroban_rpc": SorobanRpcResource(rpc_url=dg.EnvVar("SOROBAN_RPC_URL")),
        "contracts": StellarContractsResource(
            stream_contract_id=dg.EnvVar("STREAM_CONTRACT_ID"),
            lending_contract_id=dg.EnvVar("LENDING_CONTRACT_ID"),
            amm_contract_id=dg.EnvVar("AMM_CONTRACT_ID"),
            streak_contract_id=dg.EnvVar("STREAK_CONTRACT_ID"),
            usdc_issuer=dg.EnvVar("USDC_ISSUER"),
        ),
        "settings": ReconSettingsResource(),
        "alerting": AlertingResource(),
        "pushgateway": PushgatewayResource(),
        # The only resource that can sign: bound to the streak sync alone.
        "streak_oracle": StreakOracleResource(rpc_url=dg.EnvVar("SOROBAN_RPC_URL")),
        # Dagster's default layout, written atomically: runs of two days at once share some outputs.
        "io_manager": StepOutputsResource(),
    }
