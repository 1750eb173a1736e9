"""The resources every asset uses. Each is bound exactly once, in `definitions.py`.

None of them reads the environment itself: URLs, ids and secrets arrive as
`EnvVar`s resolved when a run starts. A missing or invalid value fails the run
at start with a message naming the variable.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import dagster as dg
import sqlalchemy as sa
from pydantic import PrivateAttr
from sqlalchemy.engine import Engine, make_url
from stellar_sdk import StrKey

from reconciliation_pipeline.chain.keys import sac_contract_id
from reconciliation_pipeline.chain.reader import ChainReader, ReaderSettings
from reconciliation_pipeline.core.alerts import AlertingResource
from reconciliation_pipeline.core.drift_store import IncidentPolicy
from reconciliation_pipeline.core.metrics import PushgatewayResource
from reconciliation_pipeline.core.missing_guard import MissingGuard


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
    """The application database, which also holds the `recon` schema."""

    database_url: str
    _engine: Engine | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._engine = sa.create_engine(sqlalchemy_url(self.database_url), pool_pre_ping=True)

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
    max_in_flight: int = 5
    max_attempts: int = 3
    backoff_initial_ms: int = 1000
    request_timeout_ms: int = 10000
    batch_size: int = 200
    max_response_bytes: int = 64 * 1024 * 1024

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if not self.rpc_url.startswith(("http://", "https://")):
            raise dg.DagsterInvariantViolationError(
                f"SOROBAN_RPC_URL must be an http(s) URL, got {self.rpc_url!r}"
            )
        if self.max_response_bytes < 1024:
            raise dg.DagsterInvariantViolationError(
                f"RPC_MAX_RESPONSE_BYTES must be at least 1024, got {self.max_response_bytes}")
        self.reader_settings()

    def reader_settings(self) -> ReaderSettings:
        return ReaderSettings(
            batch_size=self.batch_size,
            max_in_flight=self.max_in_flight,
            max_attempts=self.max_attempts,
            backoff_initial_s=self.backoff_initial_ms / 1000,
            request_timeout_s=self.request_timeout_ms / 1000,
            max_response_bytes=self.max_response_bytes,
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
    usdc_asset_code: str = "USDC"
    usdc_issuer: str
    network_passphrase: str

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
        return sac_contract_id(self.usdc_asset_code, self.usdc_issuer, self.network_passphrase)


class ReconSettingsResource(dg.ConfigurableResource):
    """Every tuning setting of the reconciliations, checked once when a run starts."""

    confirm_after_runs: int = 2
    confirm_grace_minutes: int = 60
    run_time_limit_s: int = 240
    """Whole-run limit of the every-few-minutes scopes."""
    nightly_run_time_limit_s: int = 7200
    """Whole-run limit of the nightly (and backfill and sensor) scopes."""
    odds_mismatch_threshold: str = "0.01"
    """Text: `EnvVar` has no float form, and parsing here gives an error that names the variable."""
    usdc_balance_tolerance: int = 10
    """Base units (1 USDC = 10,000,000): 10 is 0.000001 USDC."""
    max_missing_share: str = "0.5"
    """Text, like the odds threshold. A read whose share of keys missing on chain is above this fails."""
    missing_share_jump: str = "0.25"
    """A read whose missing share is this far above the entity's recent median fails."""
    streak_qualifying_minutes: int = 30
    """A deployment-wide rule, not run config: a run with another threshold would "repair"
    every projection to a rule the app does not use."""
    ttl_warning_ledgers: int = 120_960
    """A live entry whose TTL runs out within this many ledgers is TTL_EXPIRING."""
    origin_max_ledgers: int = 50
    """Ledgers a run fetches to name the transaction behind chain-side findings."""
    replay_max_ledgers: int = 34_560
    """Ledgers a run replays from getLedgers metadata beyond getEvents's window."""

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self.incident_policy()
        self.odds_threshold()
        self.missing_guard()
        for value, variable in ((self.run_time_limit_s, "RUN_TIME_LIMIT_SECONDS"),
                                (self.nightly_run_time_limit_s, "NIGHTLY_RUN_TIME_LIMIT_SECONDS")):
            if value <= 0:
                raise dg.DagsterInvariantViolationError(f"{variable} must be a positive number of seconds, got {value}")
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
        shares = {}
        for variable, text in (("RECON_MAX_MISSING_SHARE", self.max_missing_share),
                               ("RECON_MISSING_SHARE_JUMP", self.missing_share_jump)):
            try:
                shares[variable] = float(text)
            except ValueError:
                shares[variable] = math.nan
            if not 0.0 < shares[variable] <= 1.0:
                raise dg.DagsterInvariantViolationError(
                    f"{variable} must be a share of keys between 0 and 1 (e.g. 0.5), got {text!r}")
        return MissingGuard(max_share=shares["RECON_MAX_MISSING_SHARE"], jump=shares["RECON_MISSING_SHARE_JUMP"])


def build_resources() -> dict[str, dg.ConfigurableResource]:
    """Every resource key, bound once, each setting from its environment variable."""
    # The signing resource lives beside the streak sync, the only step that uses it.
    from reconciliation_pipeline.defs.streaks.oracle import StreakOracleResource

    return {
        "postgres": PostgresResource(database_url=dg.EnvVar("DATABASE_URL")),
        "soroban_rpc": SorobanRpcResource(
            rpc_url=dg.EnvVar("SOROBAN_RPC_URL"),
            max_in_flight=dg.EnvVar.int("RPC_MAX_IN_FLIGHT"),
            max_attempts=dg.EnvVar.int("RPC_MAX_ATTEMPTS"),
            backoff_initial_ms=dg.EnvVar.int("RPC_BACKOFF_INITIAL_MS"),
            request_timeout_ms=dg.EnvVar.int("RPC_REQUEST_TIMEOUT_MS"),
            max_response_bytes=dg.EnvVar.int("RPC_MAX_RESPONSE_BYTES"),
        ),
        "contracts": StellarContractsResource(
            stream_contract_id=dg.EnvVar("STREAM_CONTRACT_ID"),
            lending_contract_id=dg.EnvVar("LENDING_CONTRACT_ID"),
            amm_contract_id=dg.EnvVar("AMM_CONTRACT_ID"),
            streak_contract_id=dg.EnvVar("STREAK_CONTRACT_ID"),
            usdc_asset_code=dg.EnvVar("USDC_ASSET_CODE"),
            usdc_issuer=dg.EnvVar("USDC_ISSUER"),
            network_passphrase=dg.EnvVar("STELLAR_NETWORK_PASSPHRASE"),
        ),
        "settings": ReconSettingsResource(
            confirm_after_runs=dg.EnvVar.int("RECON_CONFIRM_AFTER_RUNS"),
            confirm_grace_minutes=dg.EnvVar.int("RECON_CONFIRM_GRACE_MINUTES"),
            run_time_limit_s=dg.EnvVar.int("RUN_TIME_LIMIT_SECONDS"),
            nightly_run_time_limit_s=dg.EnvVar.int("NIGHTLY_RUN_TIME_LIMIT_SECONDS"),
            odds_mismatch_threshold=dg.EnvVar("ODDS_MISMATCH_THRESHOLD"),
            usdc_balance_tolerance=dg.EnvVar.int("USDC_BALANCE_TOLERANCE"),
            streak_qualifying_minutes=dg.EnvVar.int("STREAK_QUALIFYING_MINUTES"),
            ttl_warning_ledgers=dg.EnvVar.int("TTL_WARNING_LEDGERS"),
            origin_max_ledgers=dg.EnvVar.int("ORIGIN_MAX_LEDGERS"),
            replay_max_ledgers=dg.EnvVar.int("REPLAY_MAX_LEDGERS"),
            max_missing_share=dg.EnvVar("RECON_MAX_MISSING_SHARE"),
            missing_share_jump=dg.EnvVar("RECON_MISSING_SHARE_JUMP"),
        ),
        "alerting": AlertingResource(
            routes_file=dg.EnvVar("ALERT_ROUTES_FILE"),
            webhook_url=dg.EnvVar("ALERT_WEBHOOK_URL"),
            pagerduty_routing_key=dg.EnvVar("PAGERDUTY_ROUTING_KEY"),
            smtp_password=dg.EnvVar("SMTP_PASSWORD"),
        ),
        "pushgateway": PushgatewayResource(pushgateway_url=dg.EnvVar("PROMETHEUS_PUSHGATEWAY_URL")),
        # The only resource that can sign: bound to the streak sync alone.
        "streak_oracle": StreakOracleResource(
            rpc_url=dg.EnvVar("SOROBAN_RPC_URL"),
            network_passphrase=dg.EnvVar("STELLAR_NETWORK_PASSPHRASE"),
            sync_enabled=dg.EnvVar("STREAK_SYNC_ENABLED"),
            oracle_secret_key=dg.EnvVar("ORACLE_SECRET_KEY"),
        ),
    }
