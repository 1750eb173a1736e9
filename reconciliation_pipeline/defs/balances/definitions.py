"""The balances domain's Dagster definitions, built from its spec."""

from reconciliation_pipeline.core.factory import build_domain
from reconciliation_pipeline.defs.balances.spec import SPEC

BALANCES = build_domain(SPEC)
defs = BALANCES.definitions
