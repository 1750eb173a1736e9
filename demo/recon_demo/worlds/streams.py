"""The streams world: the same escrow streams on both sides, plus the catalogue
of injected drift and what the pipeline must report for each.

Deterministic for a given size, seed and reference time, so the demo, `make ui`'s
devnet and the tests build identical worlds independently. On chain each stream is
written by its own transaction in the ledger of its creation, and a stream paid out
since by a release transaction in a later one: their hashes are known, so a finding
about a stream names the transaction that wrote its chain value."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine
from stellar_sdk import scval

from recon_demo import DEMO_SQL
from recon_demo.catalogue import ExpectedFinding, InjectedDrift, expected_findings
from recon_demo.encode import sac_balance_entry, stream_entry, stream_value
from recon_demo.identities import DEVNET, DevnetIdentities, account_id
from reconciliation_pipeline.chain.keys import enum_key, u64_entry_key
from reconciliation_pipeline.core.drift import WHOLE_ENTITY, DriftClass, Severity
from soroban_devnet.entries import contract_data_entry
from soroban_devnet.ledger import DevnetLedger

MIN_STREAMS = 12
"""The catalogue uses streams 2-11; smaller worlds cannot hold it."""

USDC_SURPLUS = 10_000_000_000
EURC_SHORTFALL = 1_000_000_000
CHAIN_ONLY_CREATED_HOURS_AGO = 36
RELEASED_HOURS_AGO = 20
"""When the release transaction of stream 2 (the known case) landed."""
ARCHIVED_STREAM, EXPIRING_STREAM = 10, 11
ARCHIVED_LEDGERS_AGO = 17_280
"""Stream 10's TTL ran out a day ago: it is in the hot archive."""
EXPIRING_IN_LEDGERS = 50_000
"""Stream 11's TTL runs out in about 3 days: inside the 7-day warning horizon."""


def stream_tx_hash(label: str) -> str:
    """The hash of a world's stream transaction (`create:<id>`, `release:<id>`)."""
    return hashlib.sha256(f"streams-devnet-tx:{label}".encode()).hexdigest()


@dataclass
class StreamsWorld:
    db: pd.DataFrame
    """Rows of the `streams` table (canonical column names, exact ints)."""
    chain: pd.DataFrame
    """`Stream(u64)` entries that decode (canonical column names, exact ints)."""
    undecodable: dict[int, str]
    """stream id -> base64 LedgerEntryData that breaks the layout."""
    escrow_balances: dict[str, int]
    """token (SAC contract id) -> the stream contract's balance."""
    chain_only_ids: list[int]
    catalogue: list[InjectedDrift] = field(default_factory=list)
    identities: DevnetIdentities = DEVNET
    expiring_live_until: int | None = None
    """Stream 11's TTL, known once the world is on a devnet (it is relative to its latest ledger)."""

    def expected_findings(self) -> pd.DataFrame:
        frame = expected_findings(self.catalogue)
        if self.expiring_live_until is not None:
            frame.loc[frame["drift_class"] == DriftClass.TTL_EXPIRING.value, "chain_value"] = str(
                self.expiring_live_until)
        return frame


def _stream(stream_id: int, drift_class: DriftClass, field_name: str = WHOLE_ENTITY,
            db_value: object = None, chain_value: object = None,
            severity: Severity = Severity.WARN) -> ExpectedFinding:
    return ExpectedFinding(
        entity_type="stream",
        entity_id=f"stream_{stream_id}",
        field=field_name,
        drift_class=drift_class.value,
        severity=severity.value,
        db_value=None if db_value is None else str(db_value),
        chain_value=None if chain_value is None else str(chain_value),
    )


def _clean_streams(n: int, reference_time: datetime, seed: int, ids: DevnetIdentities) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    stream_ids = np.arange(1, n + 1, dtype=np.int64)
    senders = [account_id(f"sender:{i}") for i in range(997)]
    recipients = [account_id(f"recipient:{i}") for i in range(1009)]
    status = rng.choice(["active", "paused", "completed", "cancelled"], size=n, p=[0.7, 0.1, 0.15, 0.05])
    total = rng.integers(10_000_000, 1_000_000_000_000, size=n, dtype=np.int64)
    fraction = rng.random(n)
    released = np.where(status == "completed", total, (total * fraction).astype(np.int64))
    token = np.where(stream_ids % 10 == 9, ids.eurc_contract_id, ids.usdc_contract_id)
    # Every stream existed two days before the reference day, one second apart.
    day = reference_time.replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(days=2)
    created_at = [day - timedelta(seconds=int(n - i)) for i in stream_ids]
    return pd.DataFrame(
        {
            "stream_id": stream_ids.astype(object),
            "sender": [senders[i % len(senders)] for i in stream_ids],
            "recipient": [recipients[(i * 7) % len(recipients)] for i in stream_ids],
            "token": token.astype(object),
            "total": total.astype(object),
            "released": released.astype(object),
            "status": status.astype(object),
            "created_at": created_at,
        }
    )


Injection = Callable[[pd.DataFrame, pd.DataFrame, dict[int, str], list[int], DevnetIdentities], InjectedDrift]


def _set(frame: pd.DataFrame, stream_id: int, **values: object) -> None:
    row = frame.index[frame["stream_id"] == stream_id][0]
    for column, value in values.items():
        frame.at[row, column] = value


def _released_mismatch(db: pd.DataFrame, chain: pd.DataFrame, *_: object) -> InjectedDrift:
    _set(chain, 2, status="active", total=100_000_000_000, released=25_000_000_000)
    _set(db, 2, status="active", total=100_000_000_000, released=25_005_000_000)
    return InjectedDrift(
        "stream_2_released_mismatch",
        "The app recorded 0.5 tokens more released than the contract paid out; the chain value was written by "
        f"the release transaction of {RELEASED_HOURS_AGO} hours ago, which the finding names.",
        (replace(_stream(2, DriftClass.VALUE_MISMATCH, "released", 25_005_000_000, 25_000_000_000),
                 origin_tx_hash=stream_tx_hash("release:2")),),
    )


def _missing_on_chain(db: pd.DataFrame, chain: pd.DataFrame, *_: object) -> InjectedDrift:
    chain.drop(chain.index[chain["stream_id"] == 3], inplace=True)
    return InjectedDrift(
        "stream_3_missing_on_chain",
        "The app stored a stream whose creation never reached the contract.",
        (_stream(3, DriftClass.MISSING_ON_CHAIN),),
    )


def _missing_in_db(db: pd.DataFrame, chain: pd.DataFrame, undecodable: dict[int, str],
                   chain_only: list[int], ids: DevnetIdentities) -> InjectedDrift:
    stream_id = int(db["stream_id"].max()) + 1
    template = chain[chain["stream_id"] == 1].iloc[0].to_dict()
    new_row = {**template, "stream_id": stream_id, "status": "active", "total": 5_000_000_000, "released": 0}
    chain.loc[chain.index.max() + 1] = pd.Series(new_row, dtype=object)
    chain_only.append(stream_id)
    return InjectedDrift(
        "chain_only_stream_missing_in_db",
        f"stream_{stream_id} was created on chain (its stream_created event is in the RPC's "
        "retention window) but the app's write was lost.",
        (_stream(stream_id, DriftClass.MISSING_IN_DB),),
    )


def _status_mismatch(db: pd.DataFrame, chain: pd.DataFrame, *_: object) -> InjectedDrift:
    _set(chain, 4, status="paused")
    _set(db, 4, status="active")
    return InjectedDrift(
        "stream_4_status_mismatch",
        "The sender paused the stream on chain; the app still shows it active.",
        (_stream(4, DriftClass.STATUS_MISMATCH, "status", "active", "paused"),),
    )


def _released_above_total(db: pd.DataFrame, chain: pd.DataFrame, *_: object) -> InjectedDrift:
    _set(chain, 5, status="completed", total=40_000_000, released=40_000_000)
    _set(db, 5, status="completed", total=40_000_000, released=40_000_001)
    return InjectedDrift(
        "stream_5_released_above_total",
        "The app's row claims more released than the stream's total (and disagrees with the chain).",
        (
            _stream(5, DriftClass.INVARIANT_VIOLATION, "released_le_total", "released=40000001 total=40000000"),
            _stream(5, DriftClass.VALUE_MISMATCH, "released", 40_000_001, 40_000_000),
        ),
    )


def _negative_amount(db: pd.DataFrame, chain: pd.DataFrame, *_: object) -> InjectedDrift:
    _set(chain, 6, status="active", released=0)
    _set(db, 6, status="active", released=-1)
    return InjectedDrift(
        "stream_6_negative_released",
        "The app stored a negative released amount (a sign bug in a refund path).",
        (
            _stream(6, DriftClass.INVARIANT_VIOLATION, "released", -1),
            _stream(6, DriftClass.VALUE_MISMATCH, "released", -1, 0),
        ),
    )


def _invalid_recipient(db: pd.DataFrame, chain: pd.DataFrame, *_: object) -> InjectedDrift:
    bad = "GBADRECIPIENT0000000000000000000000000000000000000000000"
    _set(db, 7, recipient=bad)
    return InjectedDrift(
        "stream_7_invalid_recipient",
        "The app stored a recipient that is not a valid Stellar address.",
        (_stream(7, DriftClass.INVALID_ADDRESS, "recipient", bad),),
    )


def _undecodable_entry(db: pd.DataFrame, chain: pd.DataFrame, undecodable: dict[int, str],
                       chain_only: list[int], ids: DevnetIdentities) -> InjectedDrift:
    # A USDC stream, so what its unreadable entry does to escrow solvency is the same at any size.
    for side in (db, chain):
        side.loc[side["stream_id"] == 8, "token"] = ids.usdc_contract_id
    row = chain[chain["stream_id"] == 8].iloc[0].to_dict()
    value = stream_value(row)
    # A contract upgrade wrote `total` as a symbol: the entry no longer follows the layout.
    for entry in value.map.sc_map:
        if scval.from_symbol(entry.key) == "total":
            entry.val = scval.to_symbol("oops")
    key = enum_key("Stream", scval.to_uint64(8))
    undecodable[8] = contract_data_entry(ids.stream_contract_id, key, value).to_xdr()
    chain.drop(chain.index[chain["stream_id"] == 8], inplace=True)
    return InjectedDrift(
        "stream_8_undecodable_entry",
        "The contract's entry for stream 8 does not follow the Stream layout; the raw XDR is kept. What it owes "
        "is unknown, so the USDC escrow's solvency cannot be established (its escrow is not checked).",
        (
            _stream(8, DriftClass.CHAIN_READ_ERROR),
            ExpectedFinding(entity_type="escrow", entity_id=ids.usdc_contract_id, field="escrow_balance",
                            drift_class=DriftClass.CHAIN_READ_ERROR.value, severity=Severity.WARN.value,
                            db_value=None, chain_value=None),
        ),
    )


def _archived(db: pd.DataFrame, chain: pd.DataFrame, *_: object) -> InjectedDrift:
    return InjectedDrift(
        "stream_10_archived",
        "Nobody extended stream 10's TTL: it ran out a day ago and the entry is in the hot archive (protocol 23); "
        "the contract cannot touch it until it is restored. Both sides still agree on its values.",
        (_stream(ARCHIVED_STREAM, DriftClass.ARCHIVED, "live_until_ledger", chain_value=0),),
    )


def _expiring(db: pd.DataFrame, chain: pd.DataFrame, *_: object) -> InjectedDrift:
    return InjectedDrift(
        "stream_11_ttl_expiring",
        f"Stream 11's TTL runs out in {EXPIRING_IN_LEDGERS} ledgers (about 3 days): the app should extend it.",
        (_stream(EXPIRING_STREAM, DriftClass.TTL_EXPIRING, "live_until_ledger"),),
    )


CATALOGUE: tuple[Injection, ...] = (
    _released_mismatch,
    _missing_on_chain,
    _missing_in_db,
    _status_mismatch,
    _released_above_total,
    _negative_amount,
    _invalid_recipient,
    _undecodable_entry,
    _archived,
    _expiring,
)


def _owed(frame: pd.DataFrame, token: str) -> int:
    owing = frame[(frame["token"] == token) & frame["status"].isin(["active", "paused"])]
    return int(sum(t - r for t, r in zip(owing["total"], owing["released"], strict=True)))


def build_streams_world(
    n: int, *, reference_time: datetime, seed: int = 20261121, ids: DevnetIdentities = DEVNET
) -> StreamsWorld:
    """`n` streams on both sides with the catalogue injected, escrow funded except EURC."""
    if n < MIN_STREAMS:
        raise ValueError(f"the streams world needs at least {MIN_STREAMS} streams to hold its catalogue, got {n}")
    db = _clean_streams(n, reference_time, seed, ids)
    chain = db.drop(columns=["created_at"]).copy()
    undecodable: dict[int, str] = {}
    chain_only: list[int] = []
    catalogue = [inject(db, chain, undecodable, chain_only, ids) for inject in CATALOGUE]
    chain = chain.sort_values("stream_id").reset_index(drop=True)

    # The contract really owes stream 8 too (only its entry is unreadable): fund it.
    true_chain = pd.concat([chain, db[db["stream_id"].isin(list(undecodable))].drop(columns=["created_at"])])
    usdc_owed = _owed(true_chain, ids.usdc_contract_id)
    eurc_owed = _owed(true_chain, ids.eurc_contract_id)
    escrow = {ids.usdc_contract_id: usdc_owed + USDC_SURPLUS, ids.eurc_contract_id: eurc_owed - EURC_SHORTFALL}
    eurc_db_owed = _owed(db, ids.eurc_contract_id)
    catalogue.append(
        InjectedDrift(
            "eurc_escrow_shortfall",
            "The stream contract holds less EURC than its active and paused EURC streams still owe.",
            (
                ExpectedFinding(
                    entity_type="escrow",
                    entity_id=ids.eurc_contract_id,
                    field="escrow_balance",
                    drift_class=DriftClass.INVARIANT_VIOLATION.value,
                    severity=Severity.CRITICAL.value,
                    db_value=str(eurc_db_owed),
                    chain_value=str(eurc_owed - EURC_SHORTFALL),
                ),
            ),
        )
    )
    return StreamsWorld(
        db=db.reset_index(drop=True),
        chain=chain,
        undecodable=undecodable,
        escrow_balances=escrow,
        chain_only_ids=chain_only,
        catalogue=catalogue,
        identities=ids,
    )


# -- writing it to both sides --------------------------------------------------

Progress = Callable[[str], None]
SECONDS_PER_LEDGER = 5


def _noop(_: str) -> None:
    return None


def write_streams_to_db(engine: Engine, world: StreamsWorld, progress: Progress = _noop) -> int:
    """Replace the `streams` table's rows with the world's database side (COPY)."""
    frame = world.db
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(DEMO_SQL.query("seed/truncate_streams.sql"))
        cursor = connection.connection.driver_connection.cursor()
        with cursor.copy(DEMO_SQL.read("seed/copy_streams.sql")) as copy:
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
    """Put the world's chain side into the devnet: each stream written by its creation transaction in
    the ledger of its creation (stream 2 paid out since by a release transaction), the escrow balances,
    the chain-only streams' events, stream 10 archived and stream 11 about to expire."""
    ids = world.identities
    latest = ledger.latest_ledger
    created = world.db.set_index("stream_id")["created_at"]
    chain_only_at = datetime.fromtimestamp(ledger.ledger_close_time(latest), UTC) - timedelta(
        hours=CHAIN_ONLY_CREATED_HOURS_AGO)
    released_in = latest - RELEASED_HOURS_AGO * 3600 // SECONDS_PER_LEDGER
    ttls = {ARCHIVED_STREAM: latest - ARCHIVED_LEDGERS_AGO, EXPIRING_STREAM: latest + EXPIRING_IN_LEDGERS}

    def created_in(stream_id: int) -> int:
        moment = created[stream_id] if stream_id in created.index else chain_only_at
        return min(latest, ledger.ledger_closed_by(pd.Timestamp(moment).timestamp()))

    def create(stream_id: int, key: str, data: str) -> None:
        with ledger.transaction(ledger=created_in(stream_id), tx_hash=stream_tx_hash(f"create:{stream_id}")):
            if stream_id in ttls:
                ledger.put_raw_entry(key, data, live_until=ttls[stream_id])
            else:
                ledger.put_raw_entry(key, data)

    for count, row in enumerate(world.chain.to_dict("records"), start=1):
        stream_id = int(row["stream_id"])
        key, data = stream_entry(ids.stream_contract_id, row)
        if stream_id == 2:  # created with nothing released; the release transaction wrote the chain's value
            create(stream_id, *stream_entry(ids.stream_contract_id, {**row, "released": 0}))
            with ledger.transaction(ledger=released_in, tx_hash=stream_tx_hash("release:2")):
                ledger.put_raw_entry(key, data)
                ledger.add_event(contract_id=ids.stream_contract_id,
                                 topic=[scval.to_symbol("stream_released"), scval.to_uint64(2)],
                                 value=scval.to_int128(int(row["released"])))
        else:
            create(stream_id, key, data)
        if count % 100_000 == 0:
            progress(f"devnet: {count}/{len(world.chain)} stream entries written")
    for stream_id, data in world.undecodable.items():
        create(stream_id, u64_entry_key(ids.stream_contract_id, "Stream", stream_id), data)
    for token, amount in world.escrow_balances.items():
        key, data = sac_balance_entry(token, ids.stream_contract_id, amount)
        ledger.put_raw_entry(key, data)
    chain_rows = world.chain.set_index("stream_id")
    for stream_id in world.chain_only_ids:
        ledger.add_event(
            contract_id=ids.stream_contract_id,
            topic=[scval.to_symbol("stream_created"), scval.to_uint64(stream_id)],
            value=scval.to_int128(int(chain_rows.at[stream_id, "total"])),
            ledger=created_in(stream_id),
            tx_hash=stream_tx_hash(f"create:{stream_id}"),
        )
    world.expiring_live_until = ttls[EXPIRING_STREAM]
    progress(f"devnet: {len(world.chain) + len(world.undecodable)} stream entries, "
             f"{len(world.escrow_balances)} escrow balances, {len(world.chain_only_ids)} events")
    return len(world.chain)
