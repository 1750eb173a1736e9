"""The mass-missing guard: a read where most keys are absent is a broken reader, not drift.

An RPC that answers `entries: []` for everything (a wrong contract id, another network, a node
still catching up) would otherwise turn every row into a MISSING_ON_CHAIN finding, open an
incident for each and plan an insert repair for each. When the share of the database's keys
missing on chain is above a ceiling, or far above what this entity's earlier reads saw, the
read fails closed with an error naming the likely causes, and nothing is persisted.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from sqlalchemy.engine import Engine

from reconciliation_pipeline.core import sql

MIN_KEYS = 20
"""Below this many keys the guard stays quiet: a share of a handful of rows says little, and a
fresh deployment's first rows may all be missing for good reasons."""
HISTORY_RUNS = 5
"""How many earlier accepted reads of the entity make its history (their median share)."""
MIN_HISTORY = 3
"""Fewer earlier reads than this are no history: only the ceiling applies."""


class MassMissingError(RuntimeError):
    """Too many of the database's keys are absent on chain for the read to be believed."""


@dataclass(frozen=True)
class MissingGuard:
    max_share: float
    """RECON_MAX_MISSING_SHARE: the ceiling, whatever the history."""
    jump: float
    """RECON_MISSING_SHARE_JUMP: how far above the entity's median share a read may go."""


@dataclass(frozen=True)
class MissingRead:
    """One entity's read, as the guard sees it."""

    domain: str
    entity: str
    scope: str
    keys: int
    """Keys the database's rows asked for (those with open incidents excluded)."""
    missing: int
    contract_id: str | None
    contract_variable: str | None
    latest_ledger: int | None

    @property
    def share(self) -> float:
        return self.missing / self.keys if self.keys else 0.0


def history_shares(engine: Engine, read: MissingRead) -> list[float]:
    with engine.connect() as connection:
        rows = connection.execute(sql.query("recon/queries/chain_reads_history.sql"),
                                  {"domain": read.domain, "entity": read.entity, "scope": read.scope,
                                   "limit": HISTORY_RUNS}).all()
    return [missing / keys for keys, missing in rows if keys]


def verdict(read: MissingRead, guard: MissingGuard, history: list[float]) -> str | None:
    """Why the read cannot be believed, or None."""
    if read.keys < MIN_KEYS or read.missing == 0:
        return None
    if read.share > guard.max_share:
        return f"above RECON_MAX_MISSING_SHARE={guard.max_share:g}"
    if len(history) >= MIN_HISTORY:
        usual = statistics.median(history)
        if read.share > usual + guard.jump:
            return (f"{read.share - usual:.0%} above the median of its last {len(history)} reads ({usual:.1%}; "
                    f"RECON_MISSING_SHARE_JUMP={guard.jump:g})")
    return None


def explain(read: MissingRead, reason: str) -> str:
    contract = (f"{read.contract_variable}={read.contract_id}" if read.contract_variable is not None
                else "the configured contracts")
    return (
        f"{read.domain}/{read.entity}: {read.missing:,} of {read.keys:,} keys ({read.share:.1%}) are missing on chain, "
        f"{reason}. A read like this usually means the reader looks in the wrong place, not that the entries are "
        f"gone: check that {contract} is the contract deployed on this network, that SOROBAN_RPC_URL serves that "
        f"network, and that the node is in sync (latest ledger it reported: {read.latest_ledger}). Nothing was "
        "persisted and no repair was planned. If the entries really are absent, raise RECON_MAX_MISSING_SHARE / "
        "RECON_MISSING_SHARE_JUMP for one run."
    )


def guard_read(engine: Engine, read: MissingRead, guard: MissingGuard, run_id: str) -> None:
    """Records the read, then raises `MassMissingError` when it cannot be believed. A tripped read
    is recorded too (`accepted = false`) but never becomes history."""
    reason = verdict(read, guard, history_shares(engine, read))
    with engine.begin() as connection:
        connection.execute(sql.query("recon/queries/chain_reads_record.sql"), {
            "run_id": run_id, "domain": read.domain, "entity": read.entity, "scope": read.scope,
            "keys": read.keys, "missing": read.missing, "accepted": reason is None,
        })
    if reason is not None:
        raise MassMissingError(explain(read, reason))
