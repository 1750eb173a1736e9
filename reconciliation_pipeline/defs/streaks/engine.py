"""The streak engine: streaks recomputed from the immutable focus-session log.

A user's day is their local calendar day (IANA timezone, DST-aware). Sessions
are cut at local midnight, overlapping sessions of one user count once (two
devices running at the same time do not double a day), and a day qualifies
when its focused time reaches the threshold. Because everything is recomputed
from the whole log, a session that arrives late or out of order simply changes
the result; nothing depends on arrival order.

As of a *date* D every user's "today" is D in their own timezone and only time
before their local midnight ending D counts, so a backfill of D always gives
the same answer. As of an *instant* each user's "today" is the local date at
that instant and only time before it counts (the live view).

Everything is vectorised: the only Python loop is over distinct timezones.
"""

from __future__ import annotations

import functools
import zoneinfo
from datetime import date, datetime

import numpy as np
import pandas as pd

DEFAULT_QUALIFYING_MINUTES = 30
NS_PER_MINUTE = 60 * 1_000_000_000
NS_PER_DAY = 86_400 * 1_000_000_000
_EPOCH = date(1970, 1, 1)

STREAK_COLUMNS = (
    "user_id",
    "timezone",
    "timezone_valid",
    "today",
    "current_streak",
    "longest_streak",
    "last_qualified_date",
    "qualified_days",
)


@functools.cache
def is_valid_timezone(name: object) -> bool:
    """An IANA zone name the tz database knows."""
    if not isinstance(name, str) or not name:
        return False
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _as_dates(days: pd.Series) -> pd.Series:
    """Days since the epoch as `datetime.date` objects (None where missing)."""
    dates = pd.to_datetime(days.astype("float64"), unit="D").dt.date.astype(object)
    return dates.where(days.notna(), None)


def _utc_ns(values: pd.Series) -> np.ndarray:
    """Instants (tz-aware, or naive meaning UTC) as int64 nanoseconds since the epoch."""
    return pd.DatetimeIndex(pd.to_datetime(values, utc=True)).as_unit("ns").asi8


def _local_days(instants_ns: np.ndarray, tz: str) -> np.ndarray:
    """Local calendar day (days since 1970-01-01) of each UTC instant in `tz`."""
    local = pd.DatetimeIndex(instants_ns.view("datetime64[ns]"), tz="UTC").tz_convert(tz).tz_localize(None)
    return local.to_numpy().astype("datetime64[D]").astype("int64")


def _local_midnights_ns(days: np.ndarray, tz: str) -> np.ndarray:
    """UTC instant at which each local day starts in `tz`.

    Where midnight does not exist (a DST gap at 00:00) the day starts at the
    first instant after the gap; where it occurs twice, at the first one.
    """
    unique, inverse = np.unique(days, return_inverse=True)
    naive = pd.DatetimeIndex((unique * NS_PER_DAY).view("datetime64[ns]"))
    starts = naive.tz_localize(tz, ambiguous=np.ones(len(unique), dtype=bool), nonexistent="shift_forward")
    return starts.as_unit("ns").asi8[inverse]


def _per_user_frame(users: pd.DataFrame, as_of: date | datetime) -> pd.DataFrame:
    """One row per user: timezone validity, local today and the cut-off instant (ns)."""
    frame = users[["user_id", "timezone"]].drop_duplicates("user_id").reset_index(drop=True)
    frame["user_id"] = frame["user_id"].astype("int64")
    frame["timezone_valid"] = frame["timezone"].map(is_valid_timezone).astype(bool)
    frame["today_day"] = np.int64(0)
    frame["cutoff_ns"] = np.int64(0)
    valid = frame[frame["timezone_valid"]]
    for tz, index in valid.groupby("timezone", sort=False).groups.items():
        if isinstance(as_of, datetime):
            instant = pd.Timestamp(as_of).tz_convert("UTC") if as_of.tzinfo else pd.Timestamp(as_of, tz="UTC")
            instant_ns = np.array([instant.as_unit("ns").value], dtype="int64")
            today = _local_days(instant_ns, str(tz))[0]
            cutoff = instant_ns[0]
        else:
            today = (as_of - _EPOCH).days
            cutoff = _local_midnights_ns(np.array([today + 1], dtype="int64"), str(tz))[0]
        frame.loc[index, "today_day"] = today
        frame.loc[index, "cutoff_ns"] = cutoff
    return frame


def _merge_overlaps(start: np.ndarray, end: np.ndarray, user: np.ndarray) -> pd.DataFrame:
    """The union of each user's intervals: overlapping or touching sessions become one block."""
    order = np.lexsort((start, user))
    frame = pd.DataFrame({"user_id": user[order], "start": start[order], "end": end[order]})
    reach = frame.groupby("user_id", sort=False)["end"].cummax()
    previous_reach = reach.groupby(frame["user_id"], sort=False).shift(1)
    new_block = previous_reach.isna() | (frame["start"] > previous_reach)
    frame["block"] = new_block.cumsum()
    return frame.groupby("block", sort=False).agg(user_id=("user_id", "first"), start=("start", "min"),
                                                  end=("end", "max")).reset_index(drop=True)


def _split_at_local_midnight(blocks: pd.DataFrame, tz: str) -> pd.DataFrame:
    """(user_id, day, ns) for each piece of each block cut at the user's local midnights."""
    start = blocks["start"].to_numpy()
    end = blocks["end"].to_numpy()
    first_day = _local_days(start, tz)
    # The end instant is exclusive: a block ending exactly at midnight adds nothing to the next day.
    last_day = _local_days(end - 1, tz)
    spans = last_day - first_day + 1
    piece_of = np.repeat(np.arange(len(blocks)), spans)
    offsets = np.arange(len(piece_of)) - np.repeat(np.cumsum(spans) - spans, spans)
    day = first_day[piece_of] + offsets
    day_start = _local_midnights_ns(day, tz)
    day_end = _local_midnights_ns(day + 1, tz)
    piece_ns = np.minimum(end[piece_of], day_end) - np.maximum(start[piece_of], day_start)
    return pd.DataFrame(
        {"user_id": blocks["user_id"].to_numpy()[piece_of], "day": day, "ns": np.clip(piece_ns, 0, None)}
    )


def daily_focus(sessions: pd.DataFrame, users: pd.DataFrame, as_of: date | datetime) -> pd.DataFrame:
    """Focused nanoseconds per (user, local day) up to each user's cut-off.

    Sessions of users with an unknown timezone are left out (the caller reports
    those users); duplicate session ids count once.
    """
    per_user = _per_user_frame(users, as_of)
    log = sessions.drop_duplicates("session_id")
    log = log.assign(user_id=log["user_id"].astype("int64"), start=_utc_ns(log["started_at"]), end=_utc_ns(log["ended_at"]))
    log = log.merge(per_user[per_user["timezone_valid"]][["user_id", "timezone", "cutoff_ns"]], on="user_id")
    log = log.assign(end=np.minimum(log["end"].to_numpy(), log["cutoff_ns"].to_numpy()))
    log = log[log["end"] > log["start"]]
    if log.empty:
        return pd.DataFrame({"user_id": pd.Series(dtype="int64"), "day": pd.Series(dtype="int64"),
                             "ns": pd.Series(dtype="int64")})
    blocks = _merge_overlaps(log["start"].to_numpy(), log["end"].to_numpy(), log["user_id"].to_numpy())
    blocks = blocks.merge(per_user[["user_id", "timezone"]], on="user_id")
    pieces = [_split_at_local_midnight(group, str(tz)) for tz, group in blocks.groupby("timezone", sort=False)]
    return pd.concat(pieces, ignore_index=True).groupby(["user_id", "day"], as_index=False, sort=True)["ns"].sum()


def compute_streaks(
    sessions: pd.DataFrame,
    users: pd.DataFrame,
    *,
    as_of: date | datetime,
    qualifying_minutes: int = DEFAULT_QUALIFYING_MINUTES,
) -> pd.DataFrame:
    """Each user's streaks as of a date (per-user local day) or an instant.

    `sessions`: session_id, user_id, started_at, ended_at (UTC instants).
    `users`: user_id, timezone (IANA). Returns one row per user with
    `STREAK_COLUMNS`; users with an unknown timezone get `timezone_valid`
    False and no streak values.
    """
    if qualifying_minutes < 1:
        raise ValueError(f"qualifying_minutes must be at least 1, got {qualifying_minutes}")
    per_user = _per_user_frame(users, as_of)
    days = daily_focus(sessions, users, as_of)
    qualified = days[days["ns"] >= qualifying_minutes * NS_PER_MINUTE][["user_id", "day"]]

    user = qualified["user_id"].to_numpy()
    day = qualified["day"].to_numpy()
    continues = np.zeros(len(day), dtype=bool)
    continues[1:] = (user[1:] == user[:-1]) & (np.diff(day) == 1)
    runs = pd.DataFrame({"user_id": user, "day": day, "run": np.cumsum(~continues)})
    runs["run_length"] = runs.groupby("run")["day"].transform("size")
    by_user = runs.groupby("user_id", sort=False)
    summary = pd.DataFrame(
        {
            "longest_streak": by_user["run_length"].max(),
            "last_day": by_user["day"].max(),
            "last_run_length": by_user["run_length"].last(),
            "qualified_days": by_user["day"].size(),
        }
    ).reset_index()

    result = per_user.merge(summary, on="user_id", how="left")
    valid = result["timezone_valid"]
    has_days = result["last_day"].notna()
    alive = has_days & (result["last_day"] >= result["today_day"] - 1)
    result["current_streak"] = np.where(alive, result["last_run_length"].fillna(0), 0)
    result["longest_streak"] = result["longest_streak"].fillna(0)
    result["qualified_days"] = result["qualified_days"].fillna(0)
    result["last_qualified_date"] = _as_dates(result["last_day"])
    result["today"] = _as_dates(result["today_day"])
    for column in ("current_streak", "longest_streak", "qualified_days"):
        result[column] = result[column].astype("int64").astype(object).where(valid, None)
    result["last_qualified_date"] = result["last_qualified_date"].where(valid, None)
    result["today"] = result["today"].where(valid, None)
    return result[list(STREAK_COLUMNS)].reset_index(drop=True)
