"""Settings of the USDC balances reconciliation."""

from __future__ import annotations

import dagster as dg

TOLERANCE_VARIABLE = "USDC_BALANCE_TOLERANCE"


class BalancesSettingsResource(dg.ConfigurableResource):
    """How far a database balance may be from the chain's before it is a finding."""

    usdc_balance_tolerance: int = 10
    """Base units (1 USDC = 10,000,000): 10 is 0.000001 USDC."""

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if self.usdc_balance_tolerance < 0:
            raise dg.DagsterInvariantViolationError(
                f"{TOLERANCE_VARIABLE} must be a non-negative number of base units, got {self.usdc_balance_tolerance}"
            )
