"""The app's streak rule as a resource, so every run of a deployment applies the same one."""

import dagster as dg

from reconciliation_pipeline.defs.streaks.engine import DEFAULT_QUALIFYING_MINUTES


class StreakRulesResource(dg.ConfigurableResource):
    """How many focused minutes make a local day count toward a streak (the app's rule).

    A deployment-wide setting rather than run config: a run with a different
    threshold would "repair" every projection to a rule the app does not use.
    """

    qualifying_minutes: int = DEFAULT_QUALIFYING_MINUTES

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if self.qualifying_minutes < 1:
            raise dg.DagsterInvariantViolationError(
                f"STREAK_QUALIFYING_MINUTES must be at least 1, got {self.qualifying_minutes}"
            )
