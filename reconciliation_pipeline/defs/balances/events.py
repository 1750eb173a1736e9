"""Which USDC holders moved: the USDC Stellar Asset Contract's events.

Since protocol 23 (CAP-67, unified asset events) every movement of a Stellar
asset emits an event from its SAC, classic payments to trustlines included:
`transfer` [Symbol, Address(from), Address(to), String(asset)], `mint`
[Symbol, Address(to), String(asset)], `burn` and `clawback` [Symbol,
Address(from), String(asset)]. The addresses in those topics are the holders
whose balance may have changed; an incremental balances run compares only them
and the users it must re-check.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from stellar_sdk import scval

from reconciliation_pipeline.chain import fastxdr
from reconciliation_pipeline.chain.reader import ChainReader, RetentionWindowError
from reconciliation_pipeline.core.watermarks import FULL_SWEEP, SweepPlan

MOVEMENTS = ("transfer", "mint", "burn", "clawback")
NON_WALLET_ADDRESS_TYPES = frozenset({3, 4})
"""ScAddress claimable balance and liquidity pool (CAP-67): parties that are never a user's wallet."""


@dataclass(frozen=True)
class Movements:
    holders: frozenset[str]
    """G... and C... addresses named by movement events."""
    events: int
    unreadable: int
    """Events with an address this reader cannot parse (e.g. a protocol newer than it):
    the holder they name is unknown, so a run that sees any must read every holding."""


def moved_holders(reader: ChainReader, sac_contract_id: str, first_ledger: int, last_ledger: int) -> Movements:
    """Addresses named by the SAC's movement events in ledgers `first_ledger..last_ledger`.

    Raises `RetentionWindowError` when the RPC no longer holds `first_ledger`.
    Liquidity-pool and claimable-balance parties (CAP-67) are not users' wallets.
    """
    if first_ledger > last_ledger:
        return Movements(frozenset(), 0, 0)
    topics = [[scval.to_symbol(name).to_xdr(), "**"] for name in MOVEMENTS]
    events, _ = reader.get_events(contract_ids=[sac_contract_id], topics=topics, start_ledger=first_ledger,
                                  end_ledger=last_ledger + 1)
    holders: set[str] = set()
    unreadable = 0
    for event in events:
        try:
            for segment in event.topic[1:]:
                holder = _wallet(base64.b64decode(segment))
                if holder is not None:
                    holders.add(holder)
        except (fastxdr.XdrError, ValueError):
            unreadable += 1
    return Movements(frozenset(holders), len(events), unreadable)


NO_MOVEMENTS = Movements(frozenset(), 0, 0)


def scan_movements(
    reader: ChainReader, sac_contract_id: str, plan: SweepPlan, latest_ledger: int
) -> tuple[SweepPlan, Movements]:
    """The movements since the plan's watermark, up to `latest_ledger`. The run becomes a
    full sweep when it cannot know who moved: the events are out of the RPC's retention,
    or one names a party this reader cannot parse."""
    if plan.watermark is None:
        return plan, NO_MOVEMENTS
    first = plan.watermark.ledger_sequence + 1
    try:
        movements = moved_holders(reader, sac_contract_id, first, latest_ledger)
    except RetentionWindowError as error:
        return SweepPlan(FULL_SWEEP, f"the movement events since ledger {first} are out of reach: {error}",
                         None), NO_MOVEMENTS
    if movements.unreadable:
        return SweepPlan(FULL_SWEEP, f"{movements.unreadable} movement events since ledger {first} name a party "
                         "this reader cannot parse", None), NO_MOVEMENTS
    return plan, movements


def _wallet(segment: bytes) -> str | None:
    """The G.../C... address a topic segment names; None for other values and for
    claimable-balance or liquidity-pool parties."""
    if len(segment) >= 8 and int.from_bytes(segment[:4], "big") == fastxdr.SCV_ADDRESS:
        if int.from_bytes(segment[4:8], "big") in NON_WALLET_ADDRESS_TYPES:
            return None
    (kind, value), _ = fastxdr.read_scval(segment)
    return str(value) if kind == fastxdr.SCV_ADDRESS else None
