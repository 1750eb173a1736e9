"""The demo's two acts: what happens between a first `make demo` and the second.

Act 1 seeds the world with its catalogues of injected drift; its runs open an
incident for every finding. Between the acts some of that drift goes away (the
chain moves, someone fixes a row, an on-call engineer applies planned repairs)
and a new case appears, so act 2's runs confirm what persisted, resolve what
was fixed and open what is new, and its catalogue check expects exactly that.
A `make demo` after act 2 starts the story over.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import IntEnum

from recon_demo.catalogue import ExpectedFinding, InjectedDrift
from recon_demo.world import DemoWorld
from recon_demo.worlds.balances import BalancesWorld
from recon_demo.worlds.balances import user_id as balances_user_id
from recon_demo.worlds.streams import StreamsWorld
from reconciliation_pipeline.core.drift import DriftClass, Severity

ACT_TAG = "recon_demo/act"
"""Run tag: which act of the story launched the run."""
STEP_TAG = "recon_demo/step"
"""Run tag: `reconcile` (the jobs' runs) or `repair` (act 2's applied repairs)."""


class Act(IntEnum):
    FIRST = 1
    SECOND = 2


@dataclass(frozen=True)
class Change:
    """One thing that happened between the acts, as the summary tells it."""

    side: str
    """`chain`, `database`, or `repair` (applied through the pipeline in act 2)."""
    description: str
    resolves: tuple[str, ...] = ()
    """Names of the injected drifts it makes go away."""


@dataclass(frozen=True)
class SecondAct:
    world: DemoWorld
    """The world as act 2 writes it: act 1's with the chain and database changes made and the new case
    injected; the drifts the repair run fixes are still in it (they are there when it reads)."""
    changes: tuple[Change, ...]
    new_case: InjectedDrift
    repair_domain: str
    """The domain whose planned repairs act 2 applies through a run of its reconciliation."""

    @property
    def repaired(self) -> tuple[str, ...]:
        return tuple(name for change in self.changes if change.side == "repair" for name in change.resolves)

    def after_repairs(self) -> DemoWorld:
        """The catalogue act 2's reconciliation runs must find: without what the repair run fixed."""
        streams = self.world.streams
        kept = [drift for drift in streams.catalogue if drift.name not in self.repaired]
        return replace(self.world, streams=replace(streams, catalogue=kept))


RESUMED_STREAM = 4
CORRECTED_USER_K = 8
NEW_CASE_USER_K = 13
NEW_CASE_DB_BALANCE = 5_000_000_000
NEW_CASE_CHAIN_BALANCE = 2_500_000_000


def _without(catalogue: list[InjectedDrift], *names: str) -> list[InjectedDrift]:
    unknown = set(names) - {drift.name for drift in catalogue}
    if unknown:
        raise ValueError(f"the story fixes drift the world does not inject: {sorted(unknown)}")
    return [drift for drift in catalogue if drift.name not in names]


def _resume_stream_on_chain(streams: StreamsWorld) -> StreamsWorld:
    chain = streams.chain.copy()
    chain.loc[chain["stream_id"] == RESUMED_STREAM, "status"] = "active"
    return replace(streams, chain=chain, catalogue=_without(streams.catalogue, "stream_4_status_mismatch"))


def _correct_balance_in_db(balances: BalancesWorld) -> BalancesWorld:
    db = balances.db.copy()
    uid = balances_user_id(CORRECTED_USER_K)
    db.loc[db["user_id"] == uid, "usdc_balance"] = 80_000_000
    return replace(balances, db=db, catalogue=_without(balances.catalogue, "user_8_just_beyond_tolerance"))


def _missed_withdrawal(balances: BalancesWorld) -> tuple[BalancesWorld, InjectedDrift]:
    uid = balances_user_id(NEW_CASE_USER_K)
    db = balances.db.copy()
    row = db.index[db["user_id"] == uid][0]
    wallet = db.at[row, "wallet_address"]
    db.at[row, "usdc_balance"] = NEW_CASE_DB_BALANCE
    trustlines = balances.trustlines.copy()
    holding = trustlines.index[trustlines["account"] == wallet]
    if len(holding) != 1:
        raise ValueError(f"user {uid} must hold USDC on a trustline for the story's new case")
    trustlines.loc[holding, "balance"] = NEW_CASE_CHAIN_BALANCE
    drift = InjectedDrift(
        "user_13_missed_withdrawal",
        f"user_{uid} withdrew 250 USDC on chain between the runs; the app never recorded it.",
        (ExpectedFinding(entity_type="user", entity_id=f"user_{uid}", field="usdc_balance",
                         drift_class=DriftClass.VALUE_MISMATCH.value, severity=Severity.WARN.value,
                         db_value=str(NEW_CASE_DB_BALANCE), chain_value=str(NEW_CASE_CHAIN_BALANCE)),),
    )
    return replace(balances, db=db, trustlines=trustlines, catalogue=[*balances.catalogue, drift]), drift


def second_act(world: DemoWorld) -> SecondAct:
    """Act 1's world after what happens between the runs."""
    streams = _resume_stream_on_chain(world.streams)
    balances, new_case = _missed_withdrawal(_correct_balance_in_db(world.balances))
    changes = (
        Change("chain", f"the sender resumed stream_{RESUMED_STREAM} on chain (the app had it active all along)",
               ("stream_4_status_mismatch",)),
        Change("database", f"support corrected user_{balances_user_id(CORRECTED_USER_K)}'s balance in the app "
                           "(it was 11 base units above the chain)", ("user_8_just_beyond_tolerance",)),
        Change("repair", "on-call applies the planned streams repairs through the pipeline (compare-and-swap, "
                         "audited): the released amounts of stream_2, stream_5 and stream_6 take the chain's values",
               ("stream_2_released_mismatch", "stream_5_released_above_total", "stream_6_negative_released")),
        Change("chain", new_case.description),
    )
    return SecondAct(world=replace(world, streams=streams, balances=balances), changes=changes,
                     new_case=new_case, repair_domain="streams")
