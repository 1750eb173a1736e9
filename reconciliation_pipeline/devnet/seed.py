"""Writing a generated world to both sides: the application database and the devnet."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from sqlalchemy.engine import Engine
from stellar_sdk import scval

from reconciliation_pipeline.chain.keys import u64_entry_key
from reconciliation_pipeline.core import sql
from reconciliation_pipeline.devnet.encode import sac_balance_entry, stream_entry
from reconciliation_pipeline.devnet.ledger import DevnetLedger
from reconciliation_pipeline.devnet.streams_world import CHAIN_ONLY_CREATED_HOURS_AGO, StreamsWorld

Progress = Callable[[str], None]
SECONDS_PER_LEDGER = 5


def _noop(_: str) -> None:
    return None


def write_streams_to_db(engine: Engine, world: StreamsWorld, progress: Progress = _noop) -> int:
    """Replace the `streams` table's rows with the world's database side (COPY)."""
    frame = world.db
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(sql.query("seed/truncate_streams.sql"))
        cursor = connection.connection.driver_connection.cursor()
        with cursor.copy(sql.read_sql("seed/copy_streams.sql")) as copy:
            for count, row in enumerate(frame.itertuples(index=False), start=1):
                copy.write_row(
                    (str(row.stream_id), row.sender, row.recipient, row.token, str(row.total),
                     str(row.released), row.status, row.created_at, now)
                )
                if count % 100_000 == 0:
                    progress(f"database: {count}/{len(frame)} streams written")
    progress(f"database: {len(frame)} streams written")
    return len(frame)


def load_streams_into_ledger(ledger: DevnetLedger, world: StreamsWorld, progress: Progress = _noop) -> int:
    """Put the world's chain side into the devnet: entries, escrow balances, events."""
    ids = world.identities
    for count, row in enumerate(world.chain.to_dict("records"), start=1):
        key, data = stream_entry(ids.stream_contract_id, row)
        ledger.put_raw_entry(key, data)
        if count % 100_000 == 0:
            progress(f"devnet: {count}/{len(world.chain)} stream entries written")
    for stream_id, data in world.undecodable.items():
        ledger.put_raw_entry(u64_entry_key(ids.stream_contract_id, "Stream", stream_id), data)
    for token, amount in world.escrow_balances.items():
        key, data = sac_balance_entry(token, ids.stream_contract_id, amount)
        ledger.put_raw_entry(key, data)
    created_ledger = ledger.latest_ledger - CHAIN_ONLY_CREATED_HOURS_AGO * 3600 // SECONDS_PER_LEDGER
    chain_rows = world.chain.set_index("stream_id")
    for stream_id in world.chain_only_ids:
        ledger.add_event(
            contract_id=ids.stream_contract_id,
            topic=[scval.to_symbol("stream_created"), scval.to_uint64(stream_id)],
            value=scval.to_int128(int(chain_rows.at[stream_id, "total"])),
            ledger=created_ledger,
        )
    progress(f"devnet: {len(world.chain) + len(world.undecodable)} stream entries, "
             f"{len(world.escrow_balances)} escrow balances, {len(world.chain_only_ids)} events")
    return len(world.chain)
