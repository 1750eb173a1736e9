"""The streak sync: make each mismatched player's on-chain streak match the database.

For every candidate (a registered player whose `current_streak` differs from
the recomputed one) the on-chain value is re-read first and the player skipped
if it already matches (another run, or an earlier attempt that landed). With
the sync disabled the attempt is recorded as `planned` and nothing is sent.
Otherwise `sync_streak` is built with the oracle's current sequence number,
simulated, signed, sent and polled to a final status. Every attempt is a row in
`recon.streak_syncs`, written before sending (with its hash) and finished after;
a failure is recorded and the next player goes on.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd
from sqlalchemy.engine import Engine
from stellar_sdk import Address, xdr
from stellar_sdk.exceptions import AccountNotFoundException, PrepareTransactionException

from reconciliation_pipeline.chain.decode import DecodeError, contract_data_value
from reconciliation_pipeline.chain.keys import address_entry_key, instance_key
from reconciliation_pipeline.chain.layouts import Kind, StructLayout
from reconciliation_pipeline.chain.reader import ChainReader
from reconciliation_pipeline.core import sql
from reconciliation_pipeline.defs.streaks.oracle import OracleSession, Outcome, StreakOracleResource

PLANNED = "planned"
SKIPPED_MATCH = "skipped_match"
PENDING = "pending"
SUCCESS = "success"
FAILED = "failed"
ERROR = "error"
_STATUS_OF = {Outcome.SUCCESS: SUCCESS, Outcome.FAILED: FAILED, Outcome.BAD_SEQUENCE: FAILED,
              Outcome.NOT_SENT: ERROR, Outcome.NOT_FINAL: PENDING}
ATTEMPT_COLUMNS = ("user_id", "player", "streak", "chain_value", "status", "tx_hash", "error")
PLAYER_VARIANT = "Player"

Log = Callable[[str], None]


@dataclass(frozen=True)
class SyncTarget:
    contract_id: str
    run_id: str


def _start(engine: Engine, target: SyncTarget, row: dict[str, Any]) -> int:
    with engine.begin() as connection:
        return connection.execute(
            sql.query("recon/queries/streak_sync_start.sql"),
            {"run_id": target.run_id, "user_id": row["user_id"], "player_address": row["player"],
             "streak_value": row["streak"], "chain_value": row["chain_value"], "tx_hash": row["tx_hash"],
             "status": row["status"], "error": row["error"]},
        ).scalar_one()


def _finish(engine: Engine, sync_id: int, status: str, error: str | None) -> None:
    with engine.begin() as connection:
        connection.execute(sql.query("recon/queries/streak_sync_finish.sql"),
                           {"sync_id": sync_id, "status": status, "error": error})


def _unsent(engine: Engine, target: SyncTarget, row: dict[str, Any], status: str, error: str | None) -> dict[str, Any]:
    """Record an attempt that ends before anything is sent."""
    row = {**row, "status": status, "error": error}
    _finish(engine, _start(engine, target, row), status, error)
    return row


PLAYER_PROFILE = StructLayout(fields={"current_streak": Kind.U32, "iq_level": Kind.U32})
"""`PlayerProfile { current_streak: u32, iq_level: u32 }` (CONTRACTS.md §5)."""


def decode_player_profile(entry_data_b64: str) -> dict[str, Any]:
    """A `Player(Address)` entry -> canonical columns; raises `DecodeError`."""
    return PLAYER_PROFILE.decode(entry_data_b64)


@dataclass(frozen=True)
class OracleRead:
    address: str | None
    """The `Oracle` address in the contract's instance storage, if it holds one."""
    problem: str | None = None
    """Why the instance could not tell (it does not decode, `Oracle` is not an address)."""


def read_oracle(reader: ChainReader, contract_id: str) -> OracleRead:
    """The contract's oracle as its instance storage names it."""
    key = instance_key(contract_id)
    fetched = reader.get_entries([key]).entries.get(key)
    if fetched is None:
        return OracleRead(None)
    try:
        instance = contract_data_value(fetched.data_xdr).instance
        for entry in (instance.storage.sc_map if instance is not None and instance.storage else []):
            if entry.key.type == xdr.SCValType.SCV_SYMBOL and entry.key.sym.sc_symbol == b"Oracle":
                if entry.val.type != xdr.SCValType.SCV_ADDRESS:
                    return OracleRead(None, f"the instance's Oracle is a {entry.val.type.name}, not an address")
                return OracleRead(Address.from_xdr_sc_address(entry.val.address).address)
    except (DecodeError, ValueError) as error:
        return OracleRead(None, f"the contract's instance does not decode: {error}")
    return OracleRead(None)


def read_streaks(reader: ChainReader, contract_id: str, players: list[str]) -> dict[str, tuple[int | None, str | None]]:
    """Each player's on-chain current streak now (None if not registered) or why it could not be read."""
    keys = {player: address_entry_key(contract_id, PLAYER_VARIANT, player) for player in players}
    result = reader.get_entries(list(keys.values()))
    values: dict[str, tuple[int | None, str | None]] = {}
    for player, key in keys.items():
        if key in result.failed:
            values[player] = (None, f"re-read failed: {result.failed[key]}")
        elif key not in result.entries:
            values[player] = (None, None)
        else:
            try:
                values[player] = (decode_player_profile(result.entries[key].data_xdr)["current_streak"], None)
            except DecodeError as error:
                values[player] = (None, f"re-read entry does not decode: {error}")
    return values


def _plan_only(engine: Engine, target: SyncTarget, reader: ChainReader, candidates: pd.DataFrame, log: Log) -> pd.DataFrame:
    """Sync disabled: record what would be sent (after a fresh read), send nothing."""
    current = read_streaks(reader, target.contract_id, list(candidates["player"]))
    rows = []
    for candidate in candidates.to_dict("records"):
        value, read_error = current[candidate["player"]]
        chain_value = value if read_error is None else candidate["chain_value"]
        status = SKIPPED_MATCH if read_error is None and value == candidate["streak"] else PLANNED
        error = read_error or (None if status == SKIPPED_MATCH else "STREAK_SYNC_ENABLED is false: not sent")
        rows.append(_unsent(engine, target, {**candidate, "chain_value": chain_value, "tx_hash": None}, status, error))
        log(f"streak sync (disabled): {candidate['player']} -> {candidate['streak']}: {status}")
    return pd.DataFrame(rows, columns=list(ATTEMPT_COLUMNS))


def _sync_one(engine: Engine, target: SyncTarget, reader: ChainReader, session: OracleSession,
              candidate: dict[str, Any], refusal: str | None) -> list[dict[str, Any]]:
    """Every attempt for one player (a second only when the first met a moved sequence number)."""
    value, read_error = read_streaks(reader, target.contract_id, [candidate["player"]])[candidate["player"]]
    base = {**candidate, "chain_value": value, "tx_hash": None, "error": None}
    if read_error is not None:
        return [_unsent(engine, target, {**base, "chain_value": candidate["chain_value"]}, ERROR, read_error)]
    if value is None:
        return [_unsent(engine, target, base, FAILED, "the player is no longer registered on chain; nothing sent")]
    if value == candidate["streak"]:
        return [_unsent(engine, target, base, SKIPPED_MATCH, None)]
    if refusal is not None:
        return [_unsent(engine, target, base, FAILED, refusal)]

    attempts: list[dict[str, Any]] = []
    for _ in range(2):
        try:
            envelope = session.build_signed(target.contract_id, candidate["player"], candidate["streak"])
        except PrepareTransactionException as error:
            reason = f"simulation failed, nothing sent: {error.simulate_transaction_response.error}"
            return [*attempts, _unsent(engine, target, base, FAILED, reason)]
        except AccountNotFoundException:
            reason = f"the oracle account {session.address} does not exist on this network; nothing sent"
            return [*attempts, _unsent(engine, target, base, FAILED, reason)]
        row = {**base, "tx_hash": envelope.hash_hex(), "status": PENDING}
        sync_id = _start(engine, target, row)
        try:
            submission = session.submit(envelope)
        except Exception as error:
            reason = f"{type(error).__name__}: {error}"
            _finish(engine, sync_id, ERROR, reason)
            return [*attempts, {**row, "status": ERROR, "error": reason}]
        status = _STATUS_OF[submission.outcome]
        _finish(engine, sync_id, status, submission.error)
        attempts.append({**row, "status": status, "error": submission.error})
        if submission.outcome is not Outcome.BAD_SEQUENCE:
            break
    return attempts


def sync_players(engine: Engine, target: SyncTarget, reader: ChainReader, oracle: StreakOracleResource,
                 candidates: pd.DataFrame, log: Log) -> pd.DataFrame:
    """Sync every candidate (player, user_id, streak, chain_value); returns one row per attempt."""
    if candidates.empty:
        return pd.DataFrame(columns=list(ATTEMPT_COLUMNS))
    if not oracle.enabled:
        return _plan_only(engine, target, reader, candidates, log)
    contract_oracle = read_oracle(reader, target.contract_id)
    refusal = None
    if contract_oracle.problem is not None:
        refusal = f"the streak contract's oracle cannot be read ({contract_oracle.problem}); nothing sent"
    elif contract_oracle.address is not None and contract_oracle.address != oracle.oracle_address:
        refusal = (f"ORACLE_SECRET_KEY signs as {oracle.oracle_address}, but the streak contract's oracle is "
                   f"{contract_oracle.address}: the contract would refuse the authorization; nothing sent")
    rows: list[dict[str, Any]] = []
    with oracle.session() as session:
        for candidate in candidates.to_dict("records"):
            try:
                attempts = _sync_one(engine, target, reader, session, candidate, refusal)
            except Exception as error:
                reason = f"{type(error).__name__}: {error}"
                attempts = [_unsent(engine, target, {**candidate, "tx_hash": None}, ERROR, reason)]
            for attempt in attempts:
                log(f"streak sync: {candidate['player']} -> {candidate['streak']}: {attempt['status']}"
                    + (f" (tx {attempt['tx_hash']})" if attempt["tx_hash"] else "")
                    + (f": {attempt['error']}" if attempt["error"] else ""))
            rows.extend(attempts)
    return pd.DataFrame(rows, columns=list(ATTEMPT_COLUMNS))
