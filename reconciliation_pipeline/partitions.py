"""Partitions shared by the domains."""

from __future__ import annotations

import dagster as dg

daily_partitions = dg.DailyPartitionsDefinition(start_date="2026-01-01", timezone="UTC")
"""One partition per UTC day; the nightly job reconciles the day that just ended."""
