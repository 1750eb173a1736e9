"""Settings of the markets reconciliation."""

from __future__ import annotations

import math

import dagster as dg

ODDS_THRESHOLD_VARIABLE = "ODDS_MISMATCH_THRESHOLD"


class MarketsSettingsResource(dg.ConfigurableResource):
    """How far odds may drift before it is a finding.

    Text, not a float field: Dagster's `EnvVar` has no float form, and parsing
    here gives an error that names the variable.
    """

    odds_mismatch_threshold: str = "0.01"

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self.odds_threshold()

    def odds_threshold(self) -> float:
        """The absolute YES-odds gap above which markets disagree, in (0, 1)."""
        try:
            value = float(self.odds_mismatch_threshold)
        except ValueError:
            value = math.nan
        if not 0.0 < value < 1.0:
            raise dg.DagsterInvariantViolationError(
                f"{ODDS_THRESHOLD_VARIABLE} must be an absolute probability between 0 and 1 (e.g. 0.01), "
                f"got {self.odds_mismatch_threshold!r}"
            )
        return value
