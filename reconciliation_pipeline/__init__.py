"""Reconciliation of PostgreSQL and Soroban contract state, as a Dagster code location."""

import pandas as pd

# pyarrow is installed for the streaming sweep's Parquet files; with it, pandas 3 would back every
# inferred str column with Arrow, which cannot hold a lone surrogate (an app's bad text, kept as a
# finding) and whose isin is a Python loop. Python-backed str columns are what the pipeline is built on.
pd.set_option("mode.string_storage", "python")
