"""The streams domain's Dagster definitions, built from its spec."""

from reconciliation_pipeline.core.factory import build_domain
from reconciliation_pipeline.defs.streams.spec import SPEC

STREAMS = build_domain(SPEC)
defs = STREAMS.definitions
