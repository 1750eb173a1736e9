"""The markets domain's Dagster definitions, built from its spec."""

from reconciliation_pipeline.core.factory import build_domain
from reconciliation_pipeline.defs.markets.spec import SPEC

MARKETS = build_domain(SPEC)
defs = MARKETS.definitions
