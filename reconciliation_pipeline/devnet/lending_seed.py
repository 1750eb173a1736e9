"""Writing a lending world to both sides: the application database and the devnet
(contract entries, contract events, and `getTransaction` outcomes)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine
from stellar_sdk import scval, xdr

from reconciliation_pipeline.chain import fastxdr
from reconciliation_pipeline.core import sql
from reconciliation_pipeline.devnet.encode import unit_enum
from reconciliation_pipeline.devnet.ledger import DevnetLedger
from reconciliation_pipeline.devnet.lending_world import LendingWorld
from reconciliation_pipeline.devnet.transactions import TransactionStore

Progress = Callable[[str], None]


def _noop(_: str) -> None:
    return None


def _copy(connection: Any, statement: str, rows: Iterable[tuple[Any, ...]]) -> None:
    cursor = connection.connection.driver_connection.cursor()
    with cursor.copy(sql.read_sql(statement)) as copy:
        for row in rows:
            copy.write_row(row)


def _text(value: object) -> str | None:
    return None if value is None or value != value else str(value)


def write_lending_to_db(engine: Engine, world: LendingWorld, progress: Progress = _noop) -> int:
    """Replace the lending tables' rows with the world's database side (COPY)."""
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(sql.query("seed/lending_truncate.sql"))
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
    value = fastxdr.struct_value(
        {
            "borrower": (fastxdr.SCV_ADDRESS, row["borrower"]),
            "principal": (fastxdr.SCV_I128, int(row["principal"])),
            "outstanding": (fastxdr.SCV_I128, int(row["outstanding"])),
            "status": fastxdr.unit_enum_value(str(row["status"]).capitalize()),
        }
    )
    return fastxdr.contract_data_entry(contract_id, key, value)


def position_entry(contract_id: str, row: dict[str, Any]) -> tuple[str, str]:
    """A `Position(Address)` entry: `{deposited, shares}`."""
    key = (fastxdr.SCV_VEC, [(fastxdr.SCV_SYMBOL, "Position"), (fastxdr.SCV_ADDRESS, row["provider"])])
    value = fastxdr.struct_value(
        {"deposited": (fastxdr.SCV_I128, int(row["deposited"])), "shares": (fastxdr.SCV_I128, int(row["shares"]))}
    )
    return fastxdr.contract_data_entry(contract_id, key, value)


def reputation_entry(contract_id: str, row: dict[str, Any]) -> tuple[str, str]:
    """A `Reputation(Address)` entry: a `u32` score."""
    key = (fastxdr.SCV_VEC, [(fastxdr.SCV_SYMBOL, "Reputation"), (fastxdr.SCV_ADDRESS, row["address"])])
    return fastxdr.contract_data_entry(contract_id, key, (fastxdr.SCV_U32, int(row["score"])))


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
    """Put the world's chain side into the devnet: entries, events and transaction outcomes.

    `transactions` is the devnet's one `TransactionStore` (other seeders share it).
    """
    contract_id = world.identities.lending_contract_id
    for build, frame in ((loan_entry, world.loans_chain), (position_entry, world.positions_chain),
                         (reputation_entry, world.reputation_chain)):
        for row in frame.to_dict("records"):
            ledger.put_raw_entry(*build(contract_id, row))
    for row in world.events.to_dict("records"):
        topic, value = event_topic_and_value(row)
        ledger.add_event(contract_id=contract_id, topic=topic, value=value,
                         ledger=ledger_closed_by(ledger, pd.Timestamp(row["at"]).to_pydatetime()),
                         tx_hash=row["tx_hash"])
    for tx_hash, status in world.transaction_outcomes.items():
        transactions.record_status(tx_hash, status)
    progress(f"devnet: {len(world.loans_chain)} loans, {len(world.positions_chain)} positions, "
             f"{len(world.reputation_chain)} scores, {len(world.events)} lending events, "
             f"{len(world.transaction_outcomes)} transaction outcomes")
    return len(world.loans_chain)
