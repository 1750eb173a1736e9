"""Partitions shared by the domains."""

from __future__ import annotations

import dagster as dg
import pandas as pd

daily_partitions = dg.DailyPartitionsDefinition(start_date="2026-01-01", timezone="UTC")
"""One partition per UTC day; the nightly job reconciles the day that just ended."""

SHARD_COUNT = 4
"""How many shards a large-fleet sweep splits a day's entities into."""

shard_partitions = dg.StaticPartitionsDefinition([str(shard) for shard in range(SHARD_COUNT)])
"""One partition per shard: each is its own run, so a sweep fans out across workers."""

daily_sharded_partitions = dg.MultiPartitionsDefinition({"date": daily_partitions, "shard": shard_partitions})
"""(UTC day, shard); keys read `2026-11-20|2`."""


def shard_of(keys: pd.Series) -> pd.Series:
    """The shard of each u64 key: the key modulo `SHARD_COUNT`.

    Stream ids are sequential counters, so the remainder spreads them evenly
    without hashing, never changes for a key, and PostgreSQL computes the same
    value (`id % :shard_count`) so each shard's query reads only its own rows.
    """
    return (keys.astype("uint64") % SHARD_COUNT).astype("int64")
