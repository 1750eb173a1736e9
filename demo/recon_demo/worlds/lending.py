"""The lending world: the same loans, liquidity positions, reputation scores and
transactions on both sides, the contract events that produced them, plus the
catalogue of injected drift and what the pipeline must report for each.

Deterministic for a given size, seed and reference time, so the demo, `make ui`'s
devnet and the tests build identical worlds independently. Every event and
creation time falls between 06:00 and 20:00 UTC, three days to one day before
the reference day, so each of those days has events and none sits on a
partition boundary. Pending transactions and provisional loans sit either side of
the sweep's default 30-minute grace period, relative to the reference time."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine
from stellar_sdk import scval, xdr

from recon_demo import DEMO_SQL, encode
from recon_demo.catalogue import ExpectedFinding, InjectedDrift, expected_findings
from recon_demo.identities import DEVNET, DevnetIdentities, account_id
from reconciliation_pipeline.chain import fastxdr
from reconciliation_pipeline.core.drift import WHOLE_ENTITY, DriftClass, Severity
from soroban_devnet.entries import unit_enum
from soroban_devnet.ledger import DevnetLedger
from soroban_devnet.transactions import TransactionStore

MIN_LOANS = 8
"""The catalogue edits loans 2-5; smaller worlds cannot hold it."""

HISTORY_DAYS = 3
"""Days of history before the reference day; each holds events."""

SUCCESS = "SUCCESS"
FAILED = "FAILED"


def tx_hash(label: str) -> str:
    return hashlib.sha256(f"lending-devnet-tx:{label}".encode()).hexdigest()


@dataclass
class LendingWorld:
    loans_db: pd.DataFrame
    """Rows of `loans` (id, chain_loan_id, is_provisional, borrower, principal, outstanding,
    status, submitted_tx_hash, created_at); exact ints."""
    loans_chain: pd.DataFrame
    """`Loan(u64)` entries (loan_id, borrower, principal, outstanding, status)."""
    positions_db: pd.DataFrame
    positions_chain: pd.DataFrame
    """provider, deposited, shares on either side."""
    reputation_db: pd.DataFrame
    reputation_chain: pd.DataFrame
    """address, score on either side."""
    transactions_db: pd.DataFrame
    """Rows of `transactions` (tx_hash, kind, loan_id, address, amount, status, submitted_at)."""
    transaction_outcomes: dict[str, str]
    """tx hash -> SUCCESS | FAILED as `getTransaction` reports it; absent hashes never landed."""
    events: pd.DataFrame
    """Contract events (at, event_type, loan_id, address, amount, loan_status, tx_hash)."""
    catalogue: list[InjectedDrift] = field(default_factory=list)
    identities: DevnetIdentities = DEVNET

    def expected_findings(self) -> pd.DataFrame:
        return expected_findings(self.catalogue)

    def drift(self, name: str) -> InjectedDrift:
        return next(d for d in self.catalogue if d.name == name)


def _expected(entity_type: str, entity_id: str, drift_class: DriftClass, field_name: str = WHOLE_ENTITY,
              db_value: object = None, chain_value: object = None,
              severity: Severity = Severity.WARN) -> ExpectedFinding:
    return ExpectedFinding(
        entity_type=entity_type,
        entity_id=entity_id,
        field=field_name,
        drift_class=drift_class.value,
        severity=severity.value,
        db_value=None if db_value is None else str(db_value),
        chain_value=None if chain_value is None else str(chain_value),
    )


def _moment(first_day: datetime, index: int, offset_hours: int = 0) -> datetime:
    """A time between 06:00 and 18:00 UTC on one of the history days, by index."""
    day = first_day + timedelta(days=index % HISTORY_DAYS)
    return day + timedelta(hours=6 + offset_hours, seconds=(index * 7919) % (12 * 3600))


@dataclass
class _Draft:
    """The world while the catalogue edits it."""

    loans_db: pd.DataFrame
    loans_chain: pd.DataFrame
    loan_meta: pd.DataFrame  # loan_id -> created_at, tx_hash (the creating transaction)
    positions_db: pd.DataFrame
    positions_chain: pd.DataFrame
    reputation_db: pd.DataFrame
    reputation_chain: pd.DataFrame
    transactions_db: pd.DataFrame
    outcomes: dict[str, str]
    borrowers: list[str]
    providers: list[str]
    reference_time: datetime
    first_day: datetime


def _clean(n: int, reference_time: datetime, seed: int) -> _Draft:
    rng = np.random.default_rng(seed)
    first_day = reference_time.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=HISTORY_DAYS)
    borrowers = [account_id(f"borrower:{i}") for i in range(max(3, n // 3))]
    providers = [account_id(f"provider:{i}") for i in range(max(4, n // 8))]
    ids = np.arange(1, n + 1)
    status = rng.choice(["active", "repaid", "defaulted", "liquidated"], size=n, p=[0.6, 0.25, 0.1, 0.05])
    principal = rng.integers(100_000_000, 1_000_000_000_000, size=n, dtype=np.int64)
    outstanding = np.where(status == "repaid", 0, (principal * rng.random(n)).astype(np.int64))
    created_at = [_moment(first_day, int(i)) for i in ids]
    hashes = [tx_hash(f"borrow:{i}") for i in ids]
    chain = pd.DataFrame(
        {
            "loan_id": ids.astype(object),
            "borrower": [borrowers[i % len(borrowers)] for i in ids],
            "principal": principal.astype(object),
            "outstanding": outstanding.astype(object),
            "status": status.astype(object),
        }
    )
    db = chain.rename(columns={"loan_id": "chain_loan_id"}).assign(
        id=[str(i) for i in ids], is_provisional=False, submitted_tx_hash=hashes, created_at=created_at
    )
    meta = pd.DataFrame({"loan_id": ids.astype(object), "created_at": created_at, "tx_hash": hashes})
    transactions = pd.DataFrame(
        {
            "tx_hash": hashes,
            "kind": "borrow",
            "loan_id": [str(i) for i in ids],
            "address": chain["borrower"],
            "amount": chain["principal"],
            "status": "succeeded",
            "submitted_at": created_at,
        }
    )
    deposited = rng.integers(1_000_000_000, 10**13, size=len(providers), dtype=np.int64)
    positions = pd.DataFrame(
        {"provider": providers, "deposited": deposited.astype(object), "shares": (deposited // 10).astype(object)}
    )
    scores = rng.integers(0, 1000, size=len(borrowers), dtype=np.int64)
    reputation = pd.DataFrame({"address": borrowers, "score": scores.astype(object)})
    return _Draft(
        loans_db=db, loans_chain=chain, loan_meta=meta, positions_db=positions, positions_chain=positions.copy(),
        reputation_db=reputation, reputation_chain=reputation.copy(), transactions_db=transactions, outcomes={},
        borrowers=borrowers, providers=providers, reference_time=reference_time, first_day=first_day,
    )


def _set(frame: pd.DataFrame, key: str, value: object, **values: object) -> None:
    row = frame.index[frame[key] == value][0]
    for column, new in values.items():
        frame.at[row, column] = new


def _loan(loan_id: int, drift_class: DriftClass, field_name: str = WHOLE_ENTITY, db_value: object = None,
          chain_value: object = None, severity: Severity = Severity.WARN) -> ExpectedFinding:
    return _expected("loan", f"loan_{loan_id}", drift_class, field_name, db_value, chain_value, severity)


def _stale_status(w: _Draft) -> InjectedDrift:
    outstanding = w.loans_chain.loc[w.loans_chain["loan_id"] == 2, "outstanding"].iloc[0] or 1_000_000
    _set(w.loans_chain, "loan_id", 2, status="defaulted", outstanding=outstanding)
    _set(w.loans_db, "chain_loan_id", 2, status="active", outstanding=outstanding)
    return InjectedDrift(
        "loan_2_stale_status",
        "The loan defaulted on chain; the app missed the loan_closed event and still shows it active. The "
        "finding names the transaction that closed it.",
        (replace(_loan(2, DriftClass.STATUS_MISMATCH, "status", "active", "defaulted"),
                 origin_tx_hash=tx_hash("repay:2")),),
    )


def _outstanding_mismatch(w: _Draft) -> InjectedDrift:
    _set(w.loans_chain, "loan_id", 3, status="active", outstanding=40_000_000_000)
    _set(w.loans_db, "chain_loan_id", 3, status="active", outstanding=40_005_000_000)
    return InjectedDrift(
        "loan_3_outstanding_mismatch",
        "A repayment of 0.5 tokens reached the contract but not the app's outstanding amount.",
        (_loan(3, DriftClass.VALUE_MISMATCH, "outstanding", 40_005_000_000, 40_000_000_000),),
    )


def _principal_mismatch(w: _Draft) -> InjectedDrift:
    principal = int(w.loans_chain.loc[w.loans_chain["loan_id"] == 4, "principal"].iloc[0])
    _set(w.loans_db, "chain_loan_id", 4, principal=principal + 1)
    return InjectedDrift(
        "loan_4_principal_mismatch",
        "The app rounded the principal up by one base unit.",
        (_loan(4, DriftClass.VALUE_MISMATCH, "principal", principal + 1, principal),),
    )


CONCURRENT_WRITE_LOAN = 5


def _concurrent_write(w: _Draft) -> InjectedDrift:
    _set(w.loans_chain, "loan_id", CONCURRENT_WRITE_LOAN, status="repaid", outstanding=0)
    _set(w.loans_db, "chain_loan_id", CONCURRENT_WRITE_LOAN, status="active", outstanding=0)
    return InjectedDrift(
        "loan_5_concurrent_write",
        "A stale status whose repair races the app: the tests have the app write this row between "
        "the snapshot and the repair, and the app's write must win.",
        (_loan(CONCURRENT_WRITE_LOAN, DriftClass.STATUS_MISMATCH, "status", "active", "repaid"),),
    )


def _next_loan_id(w: _Draft) -> int:
    return int(max(w.loans_chain["loan_id"].max(), w.loans_db["chain_loan_id"].dropna().max())) + 1


def _add_chain_loan(w: _Draft, loan_id: int, created_at: datetime, hash_: str) -> dict[str, object]:
    row = {"loan_id": loan_id, "borrower": w.borrowers[0], "principal": 7_000_000_000, "outstanding": 7_000_000_000,
           "status": "active"}
    w.loans_chain.loc[len(w.loans_chain)] = pd.Series(row, dtype=object)
    w.loan_meta.loc[len(w.loan_meta)] = pd.Series({"loan_id": loan_id, "created_at": created_at, "tx_hash": hash_},
                                                  dtype=object)
    return row


def _missed_event(w: _Draft) -> InjectedDrift:
    loan_id = _next_loan_id(w)
    _add_chain_loan(w, loan_id, w.first_day + timedelta(days=HISTORY_DAYS - 1, hours=12), tx_hash(f"borrow:{loan_id}"))
    return InjectedDrift(
        "missed_loan_created_event",
        f"loan_{loan_id} was created on chain (its loan_created event is indexed) but the app never "
        "recorded it: the repair inserts it from the chain's state.",
        (_loan(loan_id, DriftClass.MISSING_IN_DB),),
    )


def _missing_on_chain(w: _Draft) -> InjectedDrift:
    loan_id = _next_loan_id(w)
    w.loans_db.loc[len(w.loans_db)] = pd.Series(
        {"chain_loan_id": loan_id, "borrower": w.borrowers[1], "principal": 3_000_000_000,
         "outstanding": 3_000_000_000, "status": "active", "id": str(loan_id), "is_provisional": False,
         "submitted_tx_hash": tx_hash(f"borrow:{loan_id}"),
         "created_at": w.first_day + timedelta(days=HISTORY_DAYS - 1, hours=14)},
        dtype=object,
    )
    return InjectedDrift(
        "loan_missing_on_chain",
        f"The app recorded loan_{loan_id} under a chain id the contract never issued.",
        (_loan(loan_id, DriftClass.MISSING_ON_CHAIN),),
    )


def _provisional(w: _Draft, db_id: str, hash_: str, created_at: datetime, row: dict[str, object]) -> None:
    w.loans_db.loc[len(w.loans_db)] = pd.Series(
        {"chain_loan_id": None, "borrower": row["borrower"], "principal": row["principal"],
         "outstanding": row["outstanding"], "status": row["status"], "id": db_id, "is_provisional": True,
         "submitted_tx_hash": hash_, "created_at": created_at},
        dtype=object,
    )


RESOLVABLE_PROVISIONAL = "prov-1"
UNRESOLVABLE_PROVISIONAL = "prov-2"
IN_FLIGHT_PROVISIONAL = "prov-3"


def _resolvable_provisional(w: _Draft) -> InjectedDrift:
    loan_id = _next_loan_id(w)
    created_at = w.first_day + timedelta(days=HISTORY_DAYS - 1, hours=9)
    hash_ = tx_hash(f"borrow:{RESOLVABLE_PROVISIONAL}")
    row = _add_chain_loan(w, loan_id, created_at, hash_)
    _provisional(w, RESOLVABLE_PROVISIONAL, hash_, created_at, row)
    return InjectedDrift(
        "resolvable_provisional_id",
        f"The app stored a loan under '{RESOLVABLE_PROVISIONAL}' and never learnt its id; its submitted "
        f"transaction emitted loan_created for loan {loan_id}, so the repair resolves it.",
        (_expected("loan", f"loan_{RESOLVABLE_PROVISIONAL}", DriftClass.UNRESOLVED_PROVISIONAL_ID, "chain_loan_id",
                   None, loan_id, Severity.INFO),),
    )


def _unresolvable_provisional(w: _Draft) -> InjectedDrift:
    row = {"borrower": w.borrowers[2], "principal": 9_000_000_000, "outstanding": 9_000_000_000, "status": "active"}
    _provisional(w, UNRESOLVABLE_PROVISIONAL, tx_hash(f"borrow:{UNRESOLVABLE_PROVISIONAL}"),
                 w.reference_time - timedelta(hours=3), row)
    return InjectedDrift(
        "unresolvable_provisional_id",
        f"'{UNRESOLVABLE_PROVISIONAL}' was submitted three hours ago and no loan_created event carries its "
        "transaction hash: reported as unresolved, nothing to repair.",
        (_expected("loan", f"loan_{UNRESOLVABLE_PROVISIONAL}", DriftClass.UNRESOLVED_PROVISIONAL_ID,
                   "chain_loan_id"),),
    )


def _in_flight_provisional(w: _Draft) -> InjectedDrift:
    row = {"borrower": w.borrowers[0], "principal": 1_000_000_000, "outstanding": 1_000_000_000, "status": "active"}
    _provisional(w, IN_FLIGHT_PROVISIONAL, tx_hash(f"borrow:{IN_FLIGHT_PROVISIONAL}"),
                 w.reference_time - timedelta(minutes=2), row)
    return InjectedDrift(
        "in_flight_provisional_id",
        f"'{IN_FLIGHT_PROVISIONAL}' was submitted two minutes ago: within the grace period, nothing to report.",
        (),
    )


def _pending(w: _Draft, label: str, age: timedelta, outcome: str | None) -> str:
    hash_ = tx_hash(f"pending:{label}")
    provider = w.providers[len(w.transactions_db) % len(w.providers)]
    w.transactions_db.loc[len(w.transactions_db)] = pd.Series(
        {"tx_hash": hash_, "kind": "deposit", "loan_id": None, "address": provider, "amount": 5_000_000,
         "status": "pending", "submitted_at": w.reference_time - age},
        dtype=object,
    )
    if outcome is not None:
        w.outcomes[hash_] = outcome
    return hash_


def _pending_transactions(w: _Draft) -> list[InjectedDrift]:
    drifts = []
    for label, outcome, settles_to in (("succeeded", SUCCESS, "succeeded"), ("failed", FAILED, "failed"),
                                        ("never-landed", None, "expired")):
        hash_ = _pending(w, label, timedelta(hours=2), outcome)
        chain_says = outcome or "NOT_FOUND"
        drifts.append(
            InjectedDrift(
                f"pending_tx_{label.replace('-', '_')}",
                f"A deposit recorded as pending two hours ago; getTransaction says {chain_says}, "
                f"so the repair marks it {settles_to}.",
                (_expected("transaction", f"tx_{hash_}", DriftClass.ORPHANED_PENDING_TX, "status", "pending",
                           chain_says),),
            )
        )
    _pending(w, "in-flight", timedelta(minutes=1), None)
    drifts.append(
        InjectedDrift("pending_tx_in_flight", "A deposit submitted a minute ago: within the grace period.", ())
    )
    return drifts


def _position_mismatch(w: _Draft) -> InjectedDrift:
    provider = w.providers[1]
    deposited = int(w.positions_chain.loc[w.positions_chain["provider"] == provider, "deposited"].iloc[0])
    _set(w.positions_db, "provider", provider, deposited=deposited + 10_000_000)
    return InjectedDrift(
        "position_deposited_mismatch",
        "The app counted a withdrawal of one token that never happened on chain.",
        (_expected("liquidity_position", f"position_{provider}", DriftClass.VALUE_MISMATCH, "deposited",
                   deposited + 10_000_000, deposited),),
    )


def _reputation_mismatch(w: _Draft) -> InjectedDrift:
    address = w.borrowers[1]
    _set(w.reputation_chain, "address", address, score=550)
    _set(w.reputation_db, "address", address, score=400)
    return InjectedDrift(
        "reputation_score_mismatch",
        "The contract raised the borrower's score after a repayment; the app kept the old one.",
        (_expected("reputation", f"reputation_{address}", DriftClass.VALUE_MISMATCH, "score", 400, 550),),
    )


Injection = Callable[[_Draft], InjectedDrift | list[InjectedDrift]]
CATALOGUE: tuple[Injection, ...] = (
    _stale_status,
    _outstanding_mismatch,
    _principal_mismatch,
    _concurrent_write,
    _missed_event,
    _missing_on_chain,
    _resolvable_provisional,
    _unresolvable_provisional,
    _in_flight_provisional,
    _pending_transactions,
    _position_mismatch,
    _reputation_mismatch,
)


def _events(w: _Draft) -> pd.DataFrame:
    """The contract events behind the chain's final state: every loan's loan_created, a
    repayment and a close for settled loans, each provider's deposits (and a withdrawal)."""
    loans = w.loans_chain.merge(w.loan_meta, on="loan_id")
    created = pd.DataFrame({"at": loans["created_at"], "event_type": "loan_created", "loan_id": loans["loan_id"],
                            "address": loans["borrower"], "amount": loans["principal"], "loan_status": None,
                            "tx_hash": loans["tx_hash"]})
    settled = loans[loans["status"] != "active"]
    later = settled["created_at"] + timedelta(hours=1)
    repaid = pd.DataFrame({"at": later, "event_type": "loan_repaid", "loan_id": settled["loan_id"], "address": None,
                           "amount": settled["principal"] - settled["outstanding"], "loan_status": None,
                           "tx_hash": settled["loan_id"].map(lambda i: tx_hash(f"repay:{i}"))})
    closed = repaid.assign(event_type="loan_closed", amount=None, loan_status=settled["status"])
    providers = w.positions_chain.reset_index(drop=True)
    deposit_at = [_moment(w.first_day, i, offset_hours=1) for i in range(len(providers))]
    withdrawn = pd.Series([1_000_000 if i % 2 == 0 else 0 for i in range(len(providers))], dtype=object)
    deposits = pd.DataFrame({"at": deposit_at, "event_type": "deposit", "loan_id": None,
                             "address": providers["provider"], "amount": providers["deposited"] + withdrawn,
                             "loan_status": None, "tx_hash": [tx_hash(f"deposit:{p}") for p in providers["provider"]]})
    withdraws = deposits[withdrawn > 0].assign(
        at=lambda f: f["at"] + timedelta(hours=1), event_type="withdraw", amount=withdrawn[withdrawn > 0],
        tx_hash=lambda f: f["address"].map(lambda p: tx_hash(f"withdraw:{p}")),
    )
    frame = pd.concat([created, repaid, closed, deposits, withdraws], ignore_index=True).astype(object)
    return frame.sort_values(["at", "event_type"], kind="stable").reset_index(drop=True)


def build_lending_world(
    n: int, *, reference_time: datetime, seed: int = 20261122, ids: DevnetIdentities = DEVNET
) -> LendingWorld:
    """`n` clean loans on both sides (plus their positions, scores, transactions and
    events) with the catalogue injected."""
    if n < MIN_LOANS:
        raise ValueError(f"the lending world needs at least {MIN_LOANS} loans to hold its catalogue, got {n}")
    draft = _clean(n, reference_time, seed)
    catalogue: list[InjectedDrift] = []
    for inject in CATALOGUE:
        injected = inject(draft)
        catalogue.extend(injected if isinstance(injected, list) else [injected])
    columns = ["id", "chain_loan_id", "is_provisional", "borrower", "principal", "outstanding", "status",
               "submitted_tx_hash", "created_at"]
    return LendingWorld(
        loans_db=draft.loans_db[columns].reset_index(drop=True),
        loans_chain=draft.loans_chain.sort_values("loan_id").reset_index(drop=True),
        positions_db=draft.positions_db,
        positions_chain=draft.positions_chain,
        reputation_db=draft.reputation_db,
        reputation_chain=draft.reputation_chain,
        transactions_db=draft.transactions_db.reset_index(drop=True),
        transaction_outcomes=draft.outcomes,
        events=_events(draft),
        catalogue=catalogue,
        identities=ids,
    )


# -- writing it to both sides --------------------------------------------------

Progress = Callable[[str], None]


def _noop(_: str) -> None:
    return None


def _copy(connection: Any, statement: str, rows: Iterable[tuple[Any, ...]]) -> None:
    cursor = connection.connection.driver_connection.cursor()
    with cursor.copy(DEMO_SQL.read(statement)) as copy:
        for row in rows:
            copy.write_row(row)


def _text(value: object) -> str | None:
    return None if value is None or value != value else str(value)


def write_lending_to_db(engine: Engine, world: LendingWorld, progress: Progress = _noop) -> int:
    """Replace the lending tables' rows with the world's database side (COPY)."""
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(DEMO_SQL.query("seed/lending_truncate.sql"))
        _copy(connection, "seed/lending_copy_loans.sql", (
            (r.id, _text(r.chain_loan_id), bool(r.is_provisional), r.borrower, str(r.principal), str(r.outstanding),
             r.status, r.submitted_tx_hash, r.created_at, now)
            for r in world.loans_db.itertuples(index=False)
        ))
        _copy(connection, "seed/lending_copy_transactions.sql", (
            (r.tx_hash, r.kind, _text(r.loan_id), _text(r.address), _text(r.amount), r.status, r.submitted_at, now)
            for r in world.transactions_db.itertuples(index=False)
        ))
        _copy(connection, "seed/lending_copy_positions.sql", (
            (r.provider, str(r.deposited), str(r.shares), now) for r in world.positions_db.itertuples(index=False)
        ))
        _copy(connection, "seed/lending_copy_reputation.sql", (
            (r.address, int(r.score), now) for r in world.reputation_db.itertuples(index=False)
        ))
    progress(f"database: {len(world.loans_db)} loans, {len(world.transactions_db)} transactions, "
             f"{len(world.positions_db)} positions, {len(world.reputation_db)} reputation rows written")
    return len(world.loans_db)


def loan_entry(contract_id: str, row: dict[str, Any]) -> tuple[str, str]:
    """(base64 LedgerKey, base64 LedgerEntryData) of a `Loan(u64)` entry (byte-level, checked against the SDK)."""
    key = (fastxdr.SCV_VEC, [(fastxdr.SCV_SYMBOL, "Loan"), (fastxdr.SCV_U64, int(row["loan_id"]))])
    value = encode.struct_value(
        {
            "borrower": (fastxdr.SCV_ADDRESS, row["borrower"]),
            "principal": (fastxdr.SCV_I128, int(row["principal"])),
            "outstanding": (fastxdr.SCV_I128, int(row["outstanding"])),
            "status": encode.unit_enum_value(str(row["status"]).capitalize()),
        }
    )
    return encode.contract_data_entry_b64(contract_id, key, value)


def position_entry(contract_id: str, row: dict[str, Any]) -> tuple[str, str]:
    """A `Position(Address)` entry: `{deposited, shares}`."""
    key = (fastxdr.SCV_VEC, [(fastxdr.SCV_SYMBOL, "Position"), (fastxdr.SCV_ADDRESS, row["provider"])])
    value = encode.struct_value(
        {"deposited": (fastxdr.SCV_I128, int(row["deposited"])), "shares": (fastxdr.SCV_I128, int(row["shares"]))}
    )
    return encode.contract_data_entry_b64(contract_id, key, value)


def reputation_entry(contract_id: str, row: dict[str, Any]) -> tuple[str, str]:
    """A `Reputation(Address)` entry: a `u32` score."""
    key = (fastxdr.SCV_VEC, [(fastxdr.SCV_SYMBOL, "Reputation"), (fastxdr.SCV_ADDRESS, row["address"])])
    return encode.contract_data_entry_b64(contract_id, key, (fastxdr.SCV_U32, int(row["score"])))


def event_topic_and_value(row: dict[str, Any]) -> tuple[list[xdr.SCVal], xdr.SCVal]:
    """A lending event in its CONTRACTS.md §2 layout."""
    name = row["event_type"]
    symbol = scval.to_symbol(name)
    if name == "loan_created":
        return ([symbol, scval.to_uint64(int(row["loan_id"])), scval.to_address(row["address"])],
                scval.to_int128(int(row["amount"])))
    if name == "loan_repaid":
        return [symbol, scval.to_uint64(int(row["loan_id"]))], scval.to_int128(int(row["amount"]))
    if name == "loan_closed":
        return [symbol, scval.to_uint64(int(row["loan_id"]))], unit_enum(str(row["loan_status"]).capitalize())
    return [symbol, scval.to_address(row["address"])], scval.to_int128(int(row["amount"]))


def ledger_closed_by(ledger: DevnetLedger, moment: datetime) -> int:
    """The last retained ledger that closed at or before `moment` (binary search on close times)."""
    low, high = ledger.oldest_ledger, ledger.latest_ledger
    target = int(moment.timestamp())
    if ledger.ledger_close_time(low) > target:
        raise ValueError(f"{moment.isoformat()} is older than the devnet's retention window")
    while low < high:
        middle = (low + high + 1) // 2
        if ledger.ledger_close_time(middle) <= target:
            low = middle
        else:
            high = middle - 1
    return low


def load_lending_into_ledger(
    ledger: DevnetLedger, transactions: TransactionStore, world: LendingWorld, progress: Progress = _noop
) -> int:
    """Put the world's chain side into the devnet, as the transactions that produced it: each loan
    written by its borrow transaction (with its `loan_created` event) and, once settled, by its repay
    transaction; each position by its deposit (and withdrawal); the transaction outcomes; scores.

    `transactions` is the devnet's one `TransactionStore` (other seeders share it).
    """
    contract_id = world.identities.lending_contract_id
    loans = world.loans_chain.set_index("loan_id")
    positions = world.positions_chain.set_index("provider")
    written: set[object] = set()
    for row in world.events.to_dict("records"):
        seq = ledger_closed_by(ledger, pd.Timestamp(row["at"]).to_pydatetime())
        topic, value = event_topic_and_value(row)
        with ledger.transaction(ledger=seq, tx_hash=row["tx_hash"], contract_id=contract_id):
            name = row["event_type"]
            if name == "loan_created":
                loan = loans.loc[row["loan_id"]].to_dict()
                settled = loan["status"] != "active"
                state = {**loan, "status": "active", "outstanding": loan["principal"]} if settled else loan
                ledger.put_raw_entry(*loan_entry(contract_id, {**state, "loan_id": row["loan_id"]}))
            elif name == "loan_closed":
                ledger.put_raw_entry(*loan_entry(contract_id, {**loans.loc[row["loan_id"]].to_dict(),
                                                               "loan_id": row["loan_id"]}))
            elif name in ("deposit", "withdraw") and row["address"] in positions.index:
                ledger.put_raw_entry(*position_entry(contract_id, {**positions.loc[row["address"]].to_dict(),
                                                                   "provider": row["address"]}))
                written.add(row["address"])
            ledger.add_event(contract_id=contract_id, topic=topic, value=value, ledger=seq, tx_hash=row["tx_hash"])
    for row in world.positions_chain.to_dict("records"):
        if row["provider"] not in written:
            ledger.put_raw_entry(*position_entry(contract_id, row))
    for row in world.reputation_chain.to_dict("records"):
        ledger.put_raw_entry(*reputation_entry(contract_id, row))
    for tx_hash, status in world.transaction_outcomes.items():
        transactions.record_status(tx_hash, status)
    progress(f"devnet: {len(world.loans_chain)} loans, {len(world.positions_chain)} positions, "
             f"{len(world.reputation_chain)} scores, {len(world.events)} lending events, "
             f"{len(world.transaction_outcomes)} transaction outcomes")
    return len(world.loans_chain)
