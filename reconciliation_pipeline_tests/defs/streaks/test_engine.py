"""The streak engine: local days, DST, midnight splits, the threshold, late data,
as-of determinism; examples first, then properties against a plain reference."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciliation_pipeline.defs.streaks.engine import compute_streaks, daily_focus


def local(zone: str, day: date, hour: int, minute: int = 0, fold: int = 0) -> datetime:
    return datetime.combine(day, time(hour, minute), ZoneInfo(zone)).replace(fold=fold).astimezone(UTC)


def frames(sessions: list[tuple[int, datetime, datetime]], zones: dict[int, str]) -> tuple[pd.DataFrame, pd.DataFrame]:
    log = pd.DataFrame(
        [{"session_id": f"s{i}", "user_id": u, "started_at": s, "ended_at": e} for i, (u, s, e) in enumerate(sessions)],
        columns=["session_id", "user_id", "started_at", "ended_at"],
    )
    users = pd.DataFrame({"user_id": list(zones), "timezone": list(zones.values())})
    return log, users


def streaks_of(sessions: list[tuple[int, datetime, datetime]], zones: dict[int, str], as_of: date | datetime,
               minutes: int = 30) -> dict[int, tuple]:
    log, users = frames(sessions, zones)
    result = compute_streaks(log, users, as_of=as_of, qualifying_minutes=minutes)
    return {
        row.user_id: (row.current_streak, row.longest_streak, row.last_qualified_date, row.qualified_days)
        for row in result.itertuples()
    }


def minutes_by_day(sessions: list[tuple[int, datetime, datetime]], zones: dict[int, str], as_of: date) -> dict:
    log, users = frames(sessions, zones)
    days = daily_focus(log, users, as_of)
    return {(int(r.user_id), date(1970, 1, 1) + timedelta(days=int(r.day))): r.ns / 60e9 for r in days.itertuples()}


NY = "America/New_York"
D = date(2026, 11, 20)


def test_a_session_across_midnight_is_split_between_the_two_local_days() -> None:
    sessions = [(1, local(NY, D, 23, 40), local(NY, D + timedelta(days=1), 0, 20))]
    assert minutes_by_day(sessions, {1: NY}, D + timedelta(days=1)) == {(1, D): 20, (1, D + timedelta(days=1)): 20}
    assert streaks_of(sessions, {1: NY}, D + timedelta(days=1))[1] == (0, 0, None, 0)


def test_a_session_spanning_two_midnights_fills_three_days() -> None:
    sessions = [(1, local(NY, D, 23), local(NY, D + timedelta(days=2), 1))]
    by_day = minutes_by_day(sessions, {1: NY}, D + timedelta(days=2))
    assert by_day == {(1, D): 60, (1, D + timedelta(days=1)): 1440, (1, D + timedelta(days=2)): 60}
    assert streaks_of(sessions, {1: NY}, D + timedelta(days=2))[1] == (3, 3, D + timedelta(days=2), 3)


def test_local_midnight_not_utc_midnight_splits_the_day() -> None:
    kolkata = "Asia/Kolkata"  # UTC+05:30: UTC midnight is 05:30 local
    sessions = [(1, local(kolkata, D, 23, 50), local(kolkata, D + timedelta(days=1), 0, 40))]
    assert minutes_by_day(sessions, {1: kolkata}, D + timedelta(days=1)) == {
        (1, D): 10, (1, D + timedelta(days=1)): 40,
    }


def test_spring_forward_counts_real_minutes_not_wall_clock_minutes() -> None:
    spring = date(2026, 3, 8)  # New York jumps from 02:00 to 03:00
    sessions = [(1, local(NY, spring, 1, 45), local(NY, spring, 3, 10))]
    assert minutes_by_day(sessions, {1: NY}, spring) == {(1, spring): 25}
    assert streaks_of(sessions, {1: NY}, spring)[1][3] == 0


def test_fall_back_counts_the_repeated_hour() -> None:
    fall = date(2026, 11, 1)  # New York repeats 01:00-02:00
    sessions = [(1, local(NY, fall, 1, 30), local(NY, fall, 1, 30, fold=1))]
    assert minutes_by_day(sessions, {1: NY}, fall) == {(1, fall): 60}
    whole_day = [(1, local(NY, fall, 0), local(NY, fall + timedelta(days=1), 0))]
    assert minutes_by_day(whole_day, {1: NY}, fall) == {(1, fall): 25 * 60}


def test_a_day_whose_midnight_does_not_exist_still_starts_and_counts() -> None:
    havana = "America/Havana"  # 2026-03-08 00:00 does not exist: clocks jump to 01:00
    day = date(2026, 3, 8)
    sessions = [(1, local(havana, day - timedelta(days=1), 23, 40), local(havana, day, 1, 30))]
    assert minutes_by_day(sessions, {1: havana}, day) == {(1, day - timedelta(days=1)): 20, (1, day): 30}


def test_the_threshold_is_inclusive_and_configurable() -> None:
    sessions = [
        (1, local(NY, D, 12), local(NY, D, 12, 29)),
        (1, local(NY, D + timedelta(days=1), 12), local(NY, D + timedelta(days=1), 12, 30)),
        (1, local(NY, D + timedelta(days=2), 9), local(NY, D + timedelta(days=2), 9, 15)),
        (1, local(NY, D + timedelta(days=2), 15), local(NY, D + timedelta(days=2), 15, 15)),
    ]
    as_of = D + timedelta(days=2)
    assert streaks_of(sessions, {1: NY}, as_of)[1] == (2, 2, as_of, 2)
    assert streaks_of(sessions, {1: NY}, as_of, minutes=29)[1] == (3, 3, as_of, 3)
    assert streaks_of(sessions, {1: NY}, as_of, minutes=31)[1] == (0, 0, None, 0)
    with pytest.raises(ValueError, match="at least 1"):
        streaks_of(sessions, {1: NY}, as_of, minutes=0)


def test_overlapping_sessions_count_once_and_duplicate_ids_once() -> None:
    sessions = [(1, local(NY, D, 12), local(NY, D, 12, 20)), (1, local(NY, D, 12, 5), local(NY, D, 12, 25))]
    assert minutes_by_day(sessions, {1: NY}, D) == {(1, D): 25}
    log, users = frames([(1, local(NY, D, 12), local(NY, D, 12, 40))], {1: NY})
    twice = pd.concat([log, log], ignore_index=True)
    assert compute_streaks(twice, users, as_of=D)["qualified_days"].tolist() == [1]


def test_current_streak_breaks_only_when_the_last_day_is_before_yesterday() -> None:
    days = [D - timedelta(days=n) for n in (3, 2, 1)]
    sessions = [(1, local(NY, d, 12), local(NY, d, 12, 40)) for d in days]
    assert streaks_of(sessions, {1: NY}, D)[1] == (3, 3, D - timedelta(days=1), 3)
    assert streaks_of(sessions, {1: NY}, D + timedelta(days=1))[1] == (0, 3, D - timedelta(days=1), 3)


def test_a_late_session_that_fills_a_gap_joins_the_two_runs() -> None:
    days = [D - timedelta(days=n) for n in (5, 4, 2, 1)]
    sessions = [(1, local(NY, d, 12), local(NY, d, 12, 40)) for d in days]
    assert streaks_of(sessions, {1: NY}, D)[1] == (2, 2, D - timedelta(days=1), 4)
    gap = D - timedelta(days=3)
    late = [*sessions, (1, local(NY, gap, 20), local(NY, gap, 21))]
    assert streaks_of(late, {1: NY}, D)[1] == (5, 5, D - timedelta(days=1), 5)
    assert streaks_of(list(reversed(late)), {1: NY}, D) == streaks_of(late, {1: NY}, D)


def test_as_of_a_date_ignores_everything_after_that_local_day() -> None:
    tokyo = "Asia/Tokyo"
    before = [(1, local(tokyo, D - timedelta(days=1), 12), local(tokyo, D - timedelta(days=1), 12, 40)),
              (1, local(tokyo, D, 23, 10), local(tokyo, D + timedelta(days=1), 0, 30))]
    after = [*before, (1, local(tokyo, D + timedelta(days=1), 12), local(tokyo, D + timedelta(days=1), 13))]
    assert streaks_of(before, {1: tokyo}, D) == streaks_of(after, {1: tokyo}, D)
    assert streaks_of(after, {1: tokyo}, D)[1] == (2, 2, D, 2)
    assert streaks_of(after, {1: tokyo}, D + timedelta(days=1))[1] == (3, 3, D + timedelta(days=1), 3)


def test_as_of_an_instant_uses_each_users_local_date_at_that_instant() -> None:
    instant = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
    east, west = "Pacific/Kiritimati", "Pacific/Pago_Pago"  # UTC+14 (22 Nov 02:00), UTC-11 (21 Nov 01:00)
    qualified = {
        1: [date(2026, 11, 20), date(2026, 11, 21)],
        2: [date(2026, 11, 19), date(2026, 11, 20)],
    }
    zones = {1: east, 2: west}
    sessions = [(u, local(zones[u], d, 0, 10), local(zones[u], d, 0, 50)) for u, ds in qualified.items() for d in ds]
    result = streaks_of(sessions, zones, instant)
    assert result[1] == (2, 2, date(2026, 11, 21), 2)  # today is 22 Nov there: yesterday counts
    assert result[2] == (2, 2, date(2026, 11, 20), 2)  # today is 21 Nov there
    cut = streaks_of([*sessions, (2, local(west, date(2026, 11, 21), 0, 30), local(west, date(2026, 11, 21), 3))],
                     zones, instant)
    assert cut[2] == (3, 3, date(2026, 11, 21), 3)  # only the 30 minutes before the instant count


def test_unknown_timezones_are_flagged_and_left_without_values() -> None:
    log, users = frames([(1, local(NY, D, 12), local(NY, D, 13)), (2, local(NY, D, 12), local(NY, D, 13))],
                        {1: NY, 2: "Mars/Olympus_Mons"})
    result = compute_streaks(log, users, as_of=D).set_index("user_id")
    assert result.loc[1, "timezone_valid"] and result.loc[1, "current_streak"] == 1
    assert not result.loc[2, "timezone_valid"] and result.loc[2, "current_streak"] is None


def test_users_without_sessions_get_zero_streaks() -> None:
    result = compute_streaks(frames([], {})[0], pd.DataFrame({"user_id": [5], "timezone": ["UTC"]}), as_of=D)
    assert result.iloc[0][["current_streak", "longest_streak", "qualified_days"]].tolist() == [0, 0, 0]
    assert result.iloc[0]["last_qualified_date"] is None


# -- properties ---------------------------------------------------------------

ZONES = ["UTC", NY, "Europe/Berlin", "Australia/Sydney", "Asia/Kolkata", "Asia/Kathmandu", "America/Havana",
         "Pacific/Kiritimati", "Pacific/Pago_Pago", "Pacific/Chatham", "America/St_Johns"]
BASES = [datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 22, tzinfo=UTC), datetime(2026, 10, 20, tzinfo=UTC),
         datetime(2026, 4, 1, tzinfo=UTC)]


def reference_streaks(sessions: list[tuple[datetime, datetime]], zone: str, as_of: date,
                      minutes: int) -> tuple[int, int, date | None, int]:
    """One user, one session at a time, with zoneinfo: the obvious (slow) definition."""
    tz = ZoneInfo(zone)

    def midnight(day: date) -> datetime:
        return datetime.combine(day, time(0), tz).astimezone(UTC)

    cutoff = midnight(as_of + timedelta(days=1))
    intervals = sorted((s, min(e, cutoff)) for s, e in sessions if min(e, cutoff) > s)
    merged: list[list[datetime]] = []
    for start, end in intervals:
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    seconds: dict[date, float] = {}
    for start, end in merged:
        day = start.astimezone(tz).date()
        while midnight(day) < end:
            piece = min(end, midnight(day + timedelta(days=1))) - max(start, midnight(day))
            if piece > timedelta(0):
                seconds[day] = seconds.get(day, 0) + piece.total_seconds()
            day += timedelta(days=1)
    qualified = sorted(d for d, s in seconds.items() if s >= minutes * 60)
    if not qualified:
        return (0, 0, None, 0)
    longest = run = 1
    for previous, current in zip(qualified, qualified[1:]):
        run = run + 1 if (current - previous).days == 1 else 1
        longest = max(longest, run)
    current_streak = run if qualified[-1] >= as_of - timedelta(days=1) else 0
    return (current_streak, longest, qualified[-1], len(qualified))


session_strategy = st.tuples(st.integers(0, 20 * 24 * 60), st.integers(1, 40 * 60))
user_strategy = st.tuples(st.sampled_from(ZONES), st.lists(session_strategy, max_size=14))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    users=st.lists(user_strategy, min_size=1, max_size=4),
    base=st.sampled_from(BASES),
    as_of_offset=st.integers(0, 24),
    minutes=st.integers(1, 120),
)
def test_matches_the_reference_for_any_sessions_zones_and_as_of(users, base, as_of_offset, minutes) -> None:
    zones = {u: zone for u, (zone, _) in enumerate(users, start=1)}
    sessions = [
        (u, base + timedelta(minutes=start), base + timedelta(minutes=start + length))
        for u, (_, spans) in enumerate(users, start=1)
        for start, length in spans
    ]
    as_of = base.date() + timedelta(days=as_of_offset)
    got = streaks_of(sessions, zones, as_of, minutes)
    for u, zone in zones.items():
        mine = [(s, e) for owner, s, e in sessions if owner == u]
        assert got[u] == reference_streaks(mine, zone, as_of, minutes)


@settings(max_examples=40, deadline=None)
@given(user=user_strategy, base=st.sampled_from(BASES), as_of_offset=st.integers(0, 24), data=st.data())
def test_order_splits_and_later_sessions_change_nothing(user, base, as_of_offset, data) -> None:
    zone, spans = user
    sessions = [(1, base + timedelta(minutes=s), base + timedelta(minutes=s + n)) for s, n in spans]
    as_of = base.date() + timedelta(days=as_of_offset)
    expected = streaks_of(sessions, {1: zone}, as_of)

    shuffled = data.draw(st.permutations(sessions))
    assert streaks_of(shuffled, {1: zone}, as_of) == expected

    if sessions:
        index = data.draw(st.integers(0, len(sessions) - 1))
        _, start, end = sessions[index]
        cut = start + (end - start) * data.draw(st.floats(0.01, 0.99))
        split = [*sessions[:index], (1, start, cut), (1, cut, end), *sessions[index + 1:]]
        assert streaks_of(split, {1: zone}, as_of) == expected

    after = datetime.combine(as_of + timedelta(days=1), time(0), ZoneInfo(zone)).astimezone(UTC)
    later = [*sessions, (1, after, after + timedelta(hours=5))]
    assert streaks_of(later, {1: zone}, as_of) == expected


@settings(max_examples=40, deadline=None)
@given(user=user_strategy, base=st.sampled_from(BASES), as_of_offset=st.integers(0, 24),
       low=st.integers(1, 90), extra=st.integers(0, 90))
def test_streak_values_are_ordered_and_a_higher_threshold_never_qualifies_more(user, base, as_of_offset, low, extra) -> None:
    zone, spans = user
    sessions = [(1, base + timedelta(minutes=s), base + timedelta(minutes=s + n)) for s, n in spans]
    as_of = base.date() + timedelta(days=as_of_offset)
    current, longest, last, days = streaks_of(sessions, {1: zone}, as_of, low)[1]
    assert 0 <= current <= longest <= days
    assert (last is None) == (days == 0)
    if current > 0:
        assert last >= as_of - timedelta(days=1)
    stricter = streaks_of(sessions, {1: zone}, as_of, low + extra)[1]
    assert stricter[3] <= days and stricter[1] <= longest
