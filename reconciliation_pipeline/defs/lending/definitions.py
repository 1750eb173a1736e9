"""The lending domain's Dagster definitions, built from its spec."""

from reconciliation_pipeline.core.factory import build_domain
from reconciliation_pipeline.defs.lending.spec import SPEC

LENDING = build_domain(SPEC)
defs = LENDING.definitions
