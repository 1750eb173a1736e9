"""The streaks domain's Dagster definitions: built from its spec, plus the sensor that runs
`streak_reconciliation` for the users that changed.

The sensor's cursor is a high-water mark over the projection's changes
(`user_streaks.updated_at`) and arriving sessions (`focus_sessions.received_at`),
plus the users it already launched within a short overlap before that mark, so
a transaction that committed late (its timestamp older than the mark) is still
seen once and nothing is launched twice. The nightly job covers everyone as a
fallback.
"""


import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import dagster as dg

from reconciliation_pipeline.core import sql
from reconciliation_pipeline.core.cadences import daily_partitions
from reconciliation_pipeline.core.factory import build_domain
from reconciliation_pipeline.core.json_text import to_json
from reconciliation_pipeline.defs.streaks.spec import SPEC
from reconciliation_pipeline.resources import PostgresResource

OVERLAP = timedelta(minutes=2)
MAX_SCOPED_USERS = 5_000
"""Above this many changed users a run covers everyone instead of a list."""

STREAKS = build_domain(SPEC)
JOB = "streak_reconciliation"


@dataclass
class _Cursor:
    high_water: datetime
    recent: dict[int, datetime] = field(default_factory=dict)
    """Users launched for changes within OVERLAP of the high-water mark, with the change they were launched for."""

    @classmethod
    def parse(cls, text: str) -> "_Cursor":
        data = json.loads(text)
        return cls(
            high_water=datetime.fromisoformat(data["high_water"]),
            recent={int(u): datetime.fromisoformat(t) for u, t in data.get("recent", {}).items()},
        )

    def dump(self) -> str:
        return to_json({"high_water": self.high_water.isoformat(),
                           "recent": {str(u): t.isoformat() for u, t in sorted(self.recent.items())}})


def _run_key(users: list[int], high_water: datetime) -> str:
    digest = hashlib.sha256(",".join(map(str, users)).encode()).hexdigest()[:16]
    return f"streaks:{high_water.isoformat()}:{digest}"


@dg.sensor(
    job_name=JOB,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Reconciles (and syncs on chain) the streaks of users whose projection changed or whose focus "
    "sessions arrived since the last tick.",
)
def streak_change_sensor(context: dg.SensorEvaluationContext, postgres: PostgresResource) -> dg.SensorResult:
    """Launch a streaks run, on the live partition, scoped to the users that changed."""
    with postgres.engine.connect() as connection:
        if context.cursor is None:
            mark = connection.execute(sql.query("recon/queries/streak_high_water.sql")).scalar_one() or datetime.now(UTC)
            seen = connection.execute(sql.query("recon/queries/streak_changes.sql"), {"since": mark - OVERLAP}).all()
            start = _Cursor(high_water=mark, recent={int(user): at for user, at in seen})
            return dg.SensorResult(skip_reason=f"cursor initialised at {mark.isoformat()}; "
                                               "earlier changes are the nightly job's", cursor=start.dump())
        cursor = _Cursor.parse(context.cursor)
        rows = connection.execute(sql.query("recon/queries/streak_changes.sql"),
                                  {"since": cursor.high_water - OVERLAP}).all()
    changed = {int(user): at for user, at in rows if user not in cursor.recent or at > cursor.recent[user]}
    high_water = max([cursor.high_water, *(at for _, at in rows)])
    recent = {u: t for u, t in {**cursor.recent, **changed}.items() if t > high_water - OVERLAP}
    next_cursor = _Cursor(high_water=high_water, recent=recent).dump()
    if not changed:
        return dg.SensorResult(skip_reason="no streak changes since the last tick", cursor=next_cursor)
    users = sorted(changed)
    scope = users if len(users) <= MAX_SCOPED_USERS else []
    request = dg.RunRequest(
        run_key=_run_key(users, high_water),
        partition_key=daily_partitions.get_last_partition_key(),
        run_config={"ops": {"db_user_streaks": {"config": {"only_keys": [str(u) for u in scope]}}}},
        tags={"streaks/changed_users": str(len(users))},
    )
    context.log.info(f"{len(users)} users changed; launching a streaks run for "
                     f"{'them' if scope else 'everyone (too many to list)'}")
    return dg.SensorResult(run_requests=[request], cursor=next_cursor)


defs = dg.Definitions.merge(STREAKS.definitions, dg.Definitions(sensors=[streak_change_sensor]))
