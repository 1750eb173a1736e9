"""Writing the streaks world to both sides: the application database and the devnet.

The database side replaces only the streaks world's id range of `users`,
`focus_sessions` and `user_streaks`, so other domains' demo users stay. The
chain side installs the streak contract (instance storage with the oracle,
the write path on the ledger), funds the oracle's account and registers the
players.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy.engine import Engine

from reconciliation_pipeline.core import sql
from reconciliation_pipeline.devnet.ledger import DevnetLedger
from reconciliation_pipeline.devnet.streaks_contract import StreakContract, player_key
from reconciliation_pipeline.devnet.streaks_world import (
    FIRST_USER_ID,
    LAST_USER_ID,
    StreaksWorld,
    oracle_keypair_for_devnet,
)
from reconciliation_pipeline.devnet.transactions import TransactionStore

Progress = Callable[[str], None]
PROJECTION_WRITTEN_HOURS_AGO = 2
"""The projection rows predate the late session (an hour ago): that is why they are stale."""


def _noop(_: str) -> None:
    return None


def oracle_environment() -> dict[str, str]:
    """ORACLE_SECRET_KEY for a pipeline pointed at the devnet (the launcher's default there only)."""
    return {"ORACLE_SECRET_KEY": oracle_keypair_for_devnet().secret}


def write_streaks_to_db(engine: Engine, world: StreaksWorld, progress: Progress = _noop) -> int:
    """Replace the streaks world's users, sessions and projection rows (COPY); returns participants written."""
    bounds = {"first_user_id": FIRST_USER_ID, "last_user_id": LAST_USER_ID}
    users, sessions, projection = world.users(), world.sessions(), world.projection()
    written_at = world.reference - timedelta(hours=PROJECTION_WRITTEN_HOURS_AGO)
    with engine.begin() as connection:
        for statement in ("seed/streaks_delete_projection.sql", "seed/streaks_delete_sessions.sql",
                          "seed/streaks_delete_users.sql"):
            connection.execute(sql.query(statement), bounds)
        cursor = connection.connection.driver_connection.cursor()
        with cursor.copy(sql.read_sql("seed/streaks_copy_users.sql")) as copy:
            for row in users.itertuples(index=False):
                copy.write_row((row.user_id, row.username, row.wallet_address, row.timezone))
        with cursor.copy(sql.read_sql("seed/streaks_copy_sessions.sql")) as copy:
            for row in sessions.itertuples(index=False):
                copy.write_row((row.session_id, row.user_id, row.started_at, row.ended_at, row.received_at))
        with cursor.copy(sql.read_sql("seed/streaks_copy_projection.sql")) as copy:
            for row in projection.itertuples(index=False):
                copy.write_row((row.user_id, row.current_streak, row.longest_streak, row.last_qualified_date,
                                row.qualified_days, written_at))
    progress(f"database: {len(users)} streak participants, {len(sessions)} focus sessions, "
             f"{len(projection)} projection rows written")
    return len(users)


def load_streaks_into_ledger(
    ledger: DevnetLedger, store: TransactionStore, world: StreaksWorld, progress: Progress = _noop
) -> StreakContract:
    """Install the streak contract on the devnet with the world's players and a funded oracle."""
    contract = StreakContract(ledger, store, contract_id=world.identities.streak_contract_id,
                              oracle=world.oracle).install()
    contract.fund_account(world.oracle)
    players = world.players()
    for row in players.itertuples(index=False):
        contract.register_player(row.wallet, int(row.current_streak), iq_level=100 + int(row.current_streak) % 50)
    for wallet, data in world.undecodable.items():
        ledger.put_raw_entry(player_key(contract.contract_id, wallet), data)
    progress(f"devnet: streak contract with oracle {world.oracle}, {len(players)} players, "
             f"{len(world.undecodable)} undecodable profiles")
    return contract

