"""The streaks world: focus sessions, the `user_streaks` projection and the streak
contract's players, with a catalogue of injected drift and what the pipeline
must report for each.

Every participant is a scenario built day by day in their own timezone, so
their true streaks are known by construction (not by running the engine):
sessions across midnight, a session spanning two midnights, DST transitions,
half-hour and far-off timezones, the 30-minute threshold, a late session that
fills a gap. On top of those, `n_clean` ordinary players exercise batching.

The world is relative to a reference instant (its "now"). Each participant's
timezone is chosen among candidates whose local time at that instant is
between 01:00 and 22:00, so a run started within two hours of building the
world sees the same local "today" for everyone. Deterministic for a given
reference instant, size and identities."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
from sqlalchemy.engine import Engine
from stellar_sdk import Keypair, scval

from recon_demo import DEMO_SQL
from recon_demo.catalogue import ExpectedFinding, InjectedDrift, expected_findings
from recon_demo.identities import DEVNET, DevnetIdentities, account_id, keypair
from reconciliation_pipeline.core.drift import WHOLE_ENTITY, DriftClass, Severity
from soroban_devnet.entries import contract_data_entry
from soroban_devnet.ledger import DevnetLedger
from soroban_devnet.streaks_contract import StreakContract, player_key
from soroban_devnet.transactions import TransactionStore

FIRST_USER_ID = 700_001
"""Streak participants use their own id range so other domains' users are untouched."""
LAST_USER_ID = 799_999
ORACLE_LABEL = "streak-oracle"
INVALID_WALLET = "GINVALIDWALLET0000000000000000000000000000000000000000000"
UNKNOWN_TIMEZONE = "Mars/Olympus_Mons"
SESSION_MINUTES = 40

_ANY_ZONES = ("Europe/London", "America/Sao_Paulo", "Asia/Tokyo", "America/Chicago", "Asia/Singapore",
              "Europe/Helsinki", "America/Los_Angeles", "Australia/Brisbane", "Africa/Nairobi", "America/Bogota")
_DST_ZONES = ("America/New_York", "Europe/Berlin", "Australia/Sydney", "America/Chicago", "Europe/London",
              "Pacific/Auckland")
_FAR_EAST = ("Pacific/Kiritimati", "Pacific/Tongatapu", "Pacific/Auckland", "Asia/Tokyo")
_FAR_WEST = ("Pacific/Pago_Pago", "Pacific/Honolulu", "America/Anchorage", "America/Los_Angeles")
_HALF_HOUR = ("Asia/Kolkata", "Asia/Kathmandu", "Australia/Adelaide", "America/St_Johns")


def oracle_keypair_for_devnet() -> Keypair:
    """The devnet oracle's keypair: derived from a public label, so devnet-only by construction."""
    return keypair(ORACLE_LABEL)


@dataclass(frozen=True)
class Truth:
    current_streak: int
    longest_streak: int
    last_qualified_date: date | None
    qualified_days: int


@dataclass
class Participant:
    """One user of the streaks app, built in their own timezone."""

    name: str
    user_id: int
    timezone: str
    wallet: str | None
    reference: datetime
    truth: Truth | None = None
    projection: Truth | None = None
    chain_streak: int | None = None
    """The value registered on chain; None = not registered."""
    profile_undecodable: bool = False
    """The on-chain profile exists but breaks the PlayerProfile layout."""
    sessions: list[tuple[datetime, datetime, datetime]] = field(default_factory=list)
    """(started_at, ended_at, received_at), UTC."""

    @property
    def today(self) -> date:
        return self.reference.astimezone(self._zone).date()

    @property
    def _zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone) if self.timezone != UNKNOWN_TIMEZONE else ZoneInfo("UTC")

    def day(self, offset: int) -> date:
        return self.today + timedelta(days=offset)

    def at(self, offset: int, hour: int, minute: int = 0, *, fold: int = 0) -> datetime:
        """The UTC instant of local `hour:minute` on day `today + offset`."""
        local = datetime.combine(self.day(offset), time(hour, minute), self._zone).replace(fold=fold)
        return local.astimezone(UTC)

    def session(self, start: datetime, end: datetime, received: datetime | None = None) -> None:
        self.sessions.append((start, end, received or end + timedelta(minutes=1)))

    def focus_on(self, *offsets: int, minutes: int = SESSION_MINUTES) -> None:
        """A `minutes`-long session at local noon on each day offset."""
        for offset in offsets:
            start = self.at(offset, 12)
            self.session(start, start + timedelta(minutes=minutes))

    def agree(self) -> None:
        """The projection and (with a wallet) the chain hold the true values."""
        self.projection = self.truth
        self.chain_streak = self.truth.current_streak if self.wallet is not None and self.truth else None

    def focus_now(self) -> None:
        """A session today that ended five minutes before the reference instant."""
        self.session(self.reference - timedelta(minutes=50), self.reference - timedelta(minutes=5))


def pick_zone(candidates: Sequence[str], reference: datetime) -> str:
    """The first zone whose local time at `reference` is in [01:00, 22:00): no local midnight is near."""
    for name in candidates:
        if 1 <= reference.astimezone(ZoneInfo(name)).hour < 22:
            return name
    raise ValueError(f"none of {list(candidates)} is between 01:00 and 22:00 at {reference.isoformat()}")


def dst_transition(zone: str, before: date, *, spring: bool) -> datetime:
    """The UTC instant of the zone's latest spring-forward (or fall-back) transition before `before`."""
    tz = ZoneInfo(zone)

    def offset(instant: datetime) -> timedelta:
        return instant.astimezone(tz).utcoffset() or timedelta(0)

    day = before
    for _ in range(800):
        low = datetime.combine(day - timedelta(days=1), time(12), UTC)
        high = datetime.combine(day, time(12), UTC)
        change = offset(high) - offset(low)
        if (change > timedelta(0)) if spring else (change < timedelta(0)):
            while high - low > timedelta(minutes=1):
                middle = low + (high - low) / 2
                low, high = (middle, high) if offset(middle) == offset(low) else (low, middle)
            return high.replace(second=0, microsecond=0)
        day -= timedelta(days=1)
    raise ValueError(f"{zone} has no {'spring' if spring else 'fall'} DST transition before {before}")


@dataclass
class StreaksWorld:
    participants: list[Participant]
    catalogue: list[InjectedDrift]
    undecodable: dict[str, str]
    """wallet -> base64 LedgerEntryData of a Player entry that breaks the layout."""
    reference: datetime
    identities: DevnetIdentities = DEVNET

    @property
    def oracle(self) -> str:
        return oracle_keypair_for_devnet().public_key

    def by_name(self, name: str) -> Participant:
        return next(p for p in self.participants if p.name == name)

    def users(self) -> pd.DataFrame:
        return pd.DataFrame(
            [{"user_id": p.user_id, "username": p.name, "wallet_address": p.wallet, "timezone": p.timezone}
             for p in self.participants],
            dtype=object,
        )

    def sessions(self) -> pd.DataFrame:
        rows = [
            {"session_id": f"fs-{p.user_id}-{n}", "user_id": p.user_id, "started_at": start, "ended_at": end,
             "received_at": received}
            for p in self.participants
            for n, (start, end, received) in enumerate(p.sessions, start=1)
        ]
        return pd.DataFrame(rows, columns=["session_id", "user_id", "started_at", "ended_at", "received_at"])

    def projection(self) -> pd.DataFrame:
        rows = [{"user_id": p.user_id, **vars(p.projection)} for p in self.participants if p.projection is not None]
        return pd.DataFrame(rows, columns=["user_id", *Truth.__dataclass_fields__])

    def truth(self) -> pd.DataFrame:
        rows = [{"user_id": p.user_id, **vars(p.truth)} for p in self.participants if p.truth is not None]
        return pd.DataFrame(rows, columns=["user_id", *Truth.__dataclass_fields__])

    def players(self) -> pd.DataFrame:
        """Registered on chain, with decodable profiles."""
        rows = {p.wallet: p.chain_streak for p in self.participants
                if p.wallet is not None and p.chain_streak is not None and p.wallet not in self.undecodable}
        return pd.DataFrame({"wallet": list(rows), "current_streak": list(rows.values())})

    def expected_findings(self) -> pd.DataFrame:
        return expected_findings(self.catalogue)

    def expected_syncs(self) -> dict[str, int]:
        """player -> streak the sync must write: registered players behind (or ahead) on chain."""
        return {p.wallet: p.truth.current_streak for p in self.participants
                if p.wallet is not None and p.truth is not None and p.chain_streak is not None
                and p.chain_streak != p.truth.current_streak and p.wallet not in self.undecodable
                and sum(q.wallet == p.wallet for q in self.participants) == 1}


def _projection_finding(p: Participant, field_name: str, db: object, recomputed: object,
                        severity: Severity) -> ExpectedFinding:
    return ExpectedFinding("user_streak", f"user_{p.user_id}", field_name, DriftClass.PROJECTION_DRIFT.value,
                           severity.value, None if db is None else str(db), str(recomputed))


def _player_finding(wallet: str, field_name: str, drift: DriftClass, db: object = None,
                    chain: object = None) -> ExpectedFinding:
    return ExpectedFinding("player", wallet, field_name, drift.value, Severity.WARN.value,
                           None if db is None else str(db), None if chain is None else str(chain))



def _steady_today(p: Participant) -> None:
    p.focus_on(-4, -3, -2, -1)
    p.focus_now()
    p.truth = Truth(5, 5, p.day(0), 5)
    p.agree()


def _midnight_split(p: Participant) -> None:
    # 20 min before and 20 min after a midnight: neither day reaches 30 on its own.
    p.session(p.at(-4, 23, 40), p.at(-3, 0, 20))
    p.session(p.at(-3, 12), p.at(-3, 12, 5))
    # 22:00 to 01:30 the next day: 120 minutes and 90 minutes, both days qualify.
    p.session(p.at(-2, 22), p.at(-1, 1, 30))
    p.truth = Truth(2, 2, p.day(-1), 2)
    p.agree()


def _multi_day(p: Participant) -> None:
    p.session(p.at(-6, 23), p.at(-4, 1))  # 60 min, a whole day, 60 min
    p.focus_on(-2, -1)
    p.truth = Truth(2, 3, p.day(-1), 5)
    p.agree()


def _dst_spring(p: Participant) -> None:
    jump = dst_transition(p.timezone, p.day(-10), spring=True)
    p.session(jump - timedelta(minutes=15), jump + timedelta(minutes=10))  # 25 real minutes, 85 on the wall clock
    transition_day = (jump - timedelta(minutes=15)).astimezone(ZoneInfo(p.timezone)).date()
    p.focus_on((transition_day - p.today).days - 1, (transition_day - p.today).days + 1, -2, -1)
    p.truth = Truth(2, 2, p.day(-1), 4)
    p.agree()


def _dst_fall(p: Participant) -> None:
    back = dst_transition(p.timezone, p.day(-10), spring=False)
    p.session(back - timedelta(minutes=30), back + timedelta(minutes=30))  # 60 real minutes, 0 on the wall clock
    transition_day = (back - timedelta(minutes=30)).astimezone(ZoneInfo(p.timezone)).date()
    p.focus_on((transition_day - p.today).days - 1, (transition_day - p.today).days + 1, -1)
    p.truth = Truth(1, 3, p.day(-1), 4)
    p.agree()


def _late_gap(p: Participant) -> InjectedDrift:
    p.focus_on(-10, -9, -7, -6, -5, -4, -3, -2, -1)
    late = p.at(-8, 12)
    p.session(late, late + timedelta(minutes=SESSION_MINUTES), p.reference - timedelta(hours=1))
    p.truth = Truth(10, 10, p.day(-1), 10)
    p.agree()
    p.projection = Truth(7, 7, p.day(-1), 9)
    p.chain_streak = 7
    return InjectedDrift(
        "late_session_fills_gap",
        "A session from eight days ago arrived an hour ago and fills the only gap: the streak is 10, "
        "the projection (computed before it arrived) and the chain still say 7.",
        (
            _projection_finding(p, "current_streak", 7, 10, Severity.WARN),
            _projection_finding(p, "longest_streak", 7, 10, Severity.INFO),
            _projection_finding(p, "qualified_days", 9, 10, Severity.INFO),
            _player_finding(p.wallet or "", "current_streak", DriftClass.VALUE_MISMATCH, 10, 7),
        ),
    )


def _stale_broken(p: Participant) -> InjectedDrift:
    p.focus_on(-6, -5, -4, -3)
    p.truth = Truth(0, 4, p.day(-3), 4)
    p.agree()
    p.projection = Truth(4, 4, p.day(-3), 4)
    p.chain_streak = 4
    return InjectedDrift(
        "broken_streak_not_reset",
        "The user stopped three days ago: the streak is broken, but the projection and the chain still say 4.",
        (
            _projection_finding(p, "current_streak", 4, 0, Severity.WARN),
            _player_finding(p.wallet or "", "current_streak", DriftClass.VALUE_MISMATCH, 0, 4),
        ),
    )


def _behind_on_chain(p: Participant) -> InjectedDrift:
    p.focus_on(-7, -6, -5, -4, -3, -2, -1)
    p.truth = Truth(7, 7, p.day(-1), 7)
    p.agree()
    p.chain_streak = 3
    return InjectedDrift(
        "player_behind_on_chain",
        "The projection is right (7) but the contract was never updated after day 3.",
        (_player_finding(p.wallet or "", "current_streak", DriftClass.VALUE_MISMATCH, 7, 3),),
    )


def _unregistered(p: Participant) -> InjectedDrift:
    p.focus_on(-2, -1)
    p.truth = Truth(2, 2, p.day(-1), 2)
    p.agree()
    p.chain_streak = None
    return InjectedDrift(
        "wallet_not_registered",
        "The user has a valid wallet that was never registered with the streak contract.",
        (_player_finding(p.wallet or "", WHOLE_ENTITY, DriftClass.MISSING_ON_CHAIN),),
    )


def _invalid_wallet(p: Participant) -> InjectedDrift:
    p.wallet = INVALID_WALLET
    p.focus_on(-1)
    p.truth = Truth(1, 1, p.day(-1), 1)
    p.agree()
    p.chain_streak = None
    return InjectedDrift(
        "invalid_wallet",
        "The app stored a wallet that is not a valid Stellar address.",
        (_player_finding(INVALID_WALLET, "wallet_address", DriftClass.INVALID_ADDRESS, INVALID_WALLET),),
    )


def _no_wallet(p: Participant) -> None:
    p.focus_on(-3, -2, -1)
    p.truth = Truth(3, 3, p.day(-1), 3)
    p.agree()


def _no_wallet_stale(p: Participant) -> InjectedDrift:
    p.focus_on(-6, -5, -4, -3, -2, -1)
    p.truth = Truth(6, 6, p.day(-1), 6)
    p.agree()
    p.projection = Truth(5, 5, p.day(-2), 5)
    return InjectedDrift(
        "projection_missed_yesterday",
        "The app never applied yesterday's session to the projection of a user without a wallet.",
        (
            _projection_finding(p, "current_streak", 5, 6, Severity.WARN),
            _projection_finding(p, "longest_streak", 5, 6, Severity.INFO),
            _projection_finding(p, "last_qualified_date", p.day(-2), p.day(-1), Severity.INFO),
            _projection_finding(p, "qualified_days", 5, 6, Severity.INFO),
        ),
    )


def _threshold_edges(p: Participant) -> None:
    p.focus_on(-3, minutes=29)
    p.focus_on(-2, minutes=30)
    for hour in (9, 15):
        start = p.at(-1, hour)
        p.session(start, start + timedelta(minutes=15))
    p.truth = Truth(2, 2, p.day(-1), 2)
    p.agree()


def _missing_projection(p: Participant) -> InjectedDrift:
    p.focus_on(-1)
    p.truth = Truth(1, 1, p.day(-1), 1)
    p.agree()
    p.projection = None
    row = {"current_streak": 1, "last_qualified_date": p.day(-1).isoformat(), "longest_streak": 1,
           "qualified_days": 1}
    return InjectedDrift(
        "projection_row_missing",
        "The user focused yesterday but the app never created their user_streaks row.",
        (ExpectedFinding("user_streak", f"user_{p.user_id}", WHOLE_ENTITY, DriftClass.PROJECTION_DRIFT.value,
                         Severity.WARN.value, None, json.dumps(row, sort_keys=True, allow_nan=False)),),
    )


def _three_days(p: Participant) -> None:
    p.focus_on(-3, -2, -1)
    p.truth = Truth(3, 3, p.day(-1), 3)
    p.agree()


def _half_hour_midnight(p: Participant) -> None:
    p.session(p.at(-2, 23, 50), p.at(-1, 0, 40))  # 10 minutes, then 40 minutes after local midnight
    p.truth = Truth(1, 1, p.day(-1), 1)
    p.agree()


def _unknown_timezone(p: Participant) -> InjectedDrift:
    for offset in (-2, -1):
        start = p.at(offset, 12)
        p.session(start, start + timedelta(minutes=SESSION_MINUTES))
    p.truth = None
    p.projection = Truth(2, 2, p.day(-1), 2)
    p.chain_streak = 2
    return InjectedDrift(
        "unknown_timezone",
        "The app stored a timezone the tz database does not know: no local day, no streak, nothing compared.",
        (ExpectedFinding("user_streak", f"user_{p.user_id}", "timezone", DriftClass.INVARIANT_VIOLATION.value,
                         Severity.WARN.value, UNKNOWN_TIMEZONE, None),),
    )


def _inconsistent_projection(p: Participant) -> InjectedDrift:
    p.focus_on(-3, -2, -1)
    p.truth = Truth(3, 3, p.day(-1), 3)
    p.agree()
    p.projection = Truth(3, 2, p.day(-1), 3)
    return InjectedDrift(
        "projection_contradicts_itself",
        "The projection says the current streak (3) is longer than the longest streak (2).",
        (
            _projection_finding(p, "longest_streak", 2, 3, Severity.INFO),
            ExpectedFinding("user_streak", f"user_{p.user_id}", "current_le_longest",
                            DriftClass.INVARIANT_VIOLATION.value, Severity.WARN.value,
                            "current_streak=3 longest_streak=2", None),
        ),
    )


def _corrupt_profile(p: Participant) -> InjectedDrift:
    p.focus_on(-2, -1)
    p.truth = Truth(2, 2, p.day(-1), 2)
    p.agree()
    p.profile_undecodable = True
    return InjectedDrift(
        "undecodable_player_profile",
        "The player's PlayerProfile entry does not follow the layout (current_streak is a symbol); "
        "the raw XDR is kept and nothing is synced.",
        (_player_finding(p.wallet or "", WHOLE_ENTITY, DriftClass.CHAIN_READ_ERROR),),
    )


@dataclass(frozen=True)
class _Scenario:
    name: str
    zones: Sequence[str]
    build: Callable[[Participant], InjectedDrift | None]
    wallet: bool = True


SCENARIOS: tuple[_Scenario, ...] = (
    _Scenario("steady_today", _ANY_ZONES, _steady_today),
    _Scenario("midnight_split", _ANY_ZONES[1:], _midnight_split),
    _Scenario("multi_day_session", _ANY_ZONES[2:], _multi_day),
    _Scenario("dst_spring_forward", _DST_ZONES, _dst_spring),
    _Scenario("dst_fall_back", _DST_ZONES, _dst_fall),
    _Scenario("late_session", _ANY_ZONES, _late_gap),
    _Scenario("stale_broken", _ANY_ZONES[3:], _stale_broken),
    _Scenario("behind_on_chain", _ANY_ZONES, _behind_on_chain),
    _Scenario("unregistered_wallet", _ANY_ZONES, _unregistered),
    _Scenario("invalid_wallet", _ANY_ZONES, _invalid_wallet),
    _Scenario("no_wallet", _ANY_ZONES[4:], _no_wallet, wallet=False),
    _Scenario("no_wallet_stale", _ANY_ZONES, _no_wallet_stale, wallet=False),
    _Scenario("threshold_edges", _ANY_ZONES[5:], _threshold_edges),
    _Scenario("missing_projection", _ANY_ZONES, _missing_projection),
    _Scenario("far_east", _FAR_EAST, _three_days),
    _Scenario("far_west", _FAR_WEST, _three_days),
    _Scenario("half_hour_zone", _HALF_HOUR, _half_hour_midnight),
    _Scenario("unknown_timezone", (), _unknown_timezone),
    _Scenario("inconsistent_projection", _ANY_ZONES, _inconsistent_projection),
    _Scenario("corrupt_profile", _ANY_ZONES, _corrupt_profile),
)


def _clean_player(p: Participant, index: int) -> None:
    """`k` days ending yesterday after a gap, and an earlier run of `m` days."""
    k, m = 1 + index % 9, index % 4
    p.focus_on(*range(-k, 0))
    p.focus_on(*range(-k - 1 - m, -k - 1))
    p.truth = Truth(k, max(k, m), p.day(-1), k + m)
    p.agree()


def _corrupt_entry(ids: DevnetIdentities, wallet: str) -> str:
    value = scval.to_struct({"current_streak": scval.to_symbol("oops"), "iq_level": scval.to_uint32(100)})
    key = scval.to_vec([scval.to_symbol("Player"), scval.to_address(wallet)])
    return contract_data_entry(ids.streak_contract_id, key, value).to_xdr()


def build_streaks_world(*, reference_time: datetime, n_clean: int = 200, ids: DevnetIdentities = DEVNET) -> StreaksWorld:
    """The scenarios and `n_clean` ordinary players, relative to `reference_time` (an aware instant)."""
    if n_clean < 0 or FIRST_USER_ID + len(SCENARIOS) + 1 + n_clean > LAST_USER_ID:
        raise ValueError(f"n_clean must be between 0 and {LAST_USER_ID - FIRST_USER_ID - len(SCENARIOS) - 1}")
    reference = reference_time.astimezone(UTC).replace(microsecond=0)
    participants: list[Participant] = []
    catalogue: list[InjectedDrift] = []
    next_id = FIRST_USER_ID
    for scenario in SCENARIOS:
        zone = pick_zone(scenario.zones, reference) if scenario.zones else UNKNOWN_TIMEZONE
        wallet = account_id(f"streak-player:{scenario.name}") if scenario.wallet else None
        p = Participant(scenario.name, next_id, zone, wallet, reference)
        next_id += 1
        injected = scenario.build(p)
        participants.append(p)
        if injected is not None:
            catalogue.append(injected)

    # Two participants claiming one wallet: neither can be compared or synced.
    shared_wallet = account_id("streak-player:shared")
    pair = []
    for suffix in ("a", "b"):
        p = Participant(f"shared_wallet_{suffix}", next_id, pick_zone(_ANY_ZONES, reference), shared_wallet, reference)
        next_id += 1
        p.focus_on(-1)
        p.truth = Truth(1, 1, p.day(-1), 1)
        p.agree()
        participants.append(p)
        pair.append(p)
    catalogue.append(
        InjectedDrift(
            "shared_wallet",
            "Two users claim the same wallet: its on-chain streak cannot belong to both.",
            (_player_finding(shared_wallet, "wallet_address", DriftClass.INVARIANT_VIOLATION,
                             ",".join(f"user_{p.user_id}" for p in pair)),),
        )
    )
    clean_zones = [z for z in dict.fromkeys(_ANY_ZONES + _DST_ZONES + _FAR_EAST + _FAR_WEST + _HALF_HOUR)
                   if 1 <= reference.astimezone(ZoneInfo(z)).hour < 22]
    for index in range(n_clean):
        p = Participant(f"player_{index}", next_id, clean_zones[index % len(clean_zones)],
                        account_id(f"streak-player:clean:{index}"), reference)
        next_id += 1
        _clean_player(p, index)
        participants.append(p)
    undecodable = {p.wallet: _corrupt_entry(ids, p.wallet) for p in participants if p.profile_undecodable and p.wallet}
    return StreaksWorld(participants=participants, catalogue=catalogue, undecodable=undecodable,
                        reference=reference, identities=ids)



# -- writing it to both sides --------------------------------------------------

Progress = Callable[[str], None]
PROJECTION_WRITTEN_HOURS_AGO = 2
"""The projection rows predate the late session (an hour ago): that is why they are stale."""


def _noop(_: str) -> None:
    return None


def oracle_environment() -> dict[str, str]:
    """ORACLE_SECRET_KEY for a pipeline pointed at the devnet (the launcher's default there only)."""
    return {"ORACLE_SECRET_KEY": oracle_keypair_for_devnet().secret}


def write_streaks_to_db(engine: Engine, world: StreaksWorld, progress: Progress = _noop) -> int:
    """Replace the streaks world's users, sessions and projection rows (COPY); returns participants written."""
    bounds = {"first_user_id": FIRST_USER_ID, "last_user_id": LAST_USER_ID}
    users, sessions, projection = world.users(), world.sessions(), world.projection()
    written_at = world.reference - timedelta(hours=PROJECTION_WRITTEN_HOURS_AGO)
    with engine.begin() as connection:
        for statement in ("seed/streaks_delete_projection.sql", "seed/streaks_delete_sessions.sql",
                          "seed/streaks_delete_users.sql"):
            connection.execute(DEMO_SQL.query(statement), bounds)
        cursor = connection.connection.driver_connection.cursor()
        with cursor.copy(DEMO_SQL.read("seed/streaks_copy_users.sql")) as copy:
            for row in users.itertuples(index=False):
                copy.write_row((row.user_id, row.username, row.wallet_address, row.timezone))
        with cursor.copy(DEMO_SQL.read("seed/streaks_copy_sessions.sql")) as copy:
            for row in sessions.itertuples(index=False):
                copy.write_row((row.session_id, row.user_id, row.started_at, row.ended_at, row.received_at))
        with cursor.copy(DEMO_SQL.read("seed/streaks_copy_projection.sql")) as copy:
            for row in projection.itertuples(index=False):
                copy.write_row((row.user_id, row.current_streak, row.longest_streak, row.last_qualified_date,
                                row.qualified_days, written_at))
    progress(f"database: {len(users)} streak participants, {len(sessions)} focus sessions, "
             f"{len(projection)} projection rows written")
    return len(users)


def load_streaks_into_ledger(
    ledger: DevnetLedger, store: TransactionStore, world: StreaksWorld, progress: Progress = _noop
) -> StreakContract:
    """Install the streak contract on the devnet with the world's players and a funded oracle."""
    contract = StreakContract(ledger, store, contract_id=world.identities.streak_contract_id,
                              oracle=world.oracle).install()
    contract.fund_account(world.oracle)
    players = world.players()
    for row in players.itertuples(index=False):
        contract.register_player(row.wallet, int(row.current_streak), iq_level=100 + int(row.current_streak) % 50)
    for wallet, data in world.undecodable.items():
        ledger.put_raw_entry(player_key(contract.contract_id, wallet), data)
    progress(f"devnet: streak contract with oracle {world.oracle}, {len(players)} players, "
             f"{len(world.undecodable)} undecodable profiles")
    return contract

