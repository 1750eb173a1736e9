"""The demo: a deterministic world per domain with its catalogue of injected drift,
written to both sides (the application database and the devnet), the story's second
act (`story.py`), and the launcher behind `make demo`, `make ui` and `make devnet`,
whose runs go through the workspace's code location (`stack.py`). Not part of the
product's wheel."""

from reconciliation_pipeline.core.sql import SqlFolder

DEMO_SQL = SqlFolder("recon_demo")
"""Seeding, summary and benchmark queries of the demo."""
