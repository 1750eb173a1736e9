"""Where a drift came from: the ledger, transaction and operation that last wrote the chain entry,
beside the time the database row was last written.

Every chain-side finding (the entry exists: a value or status that differs, an entry only the
chain has, an archived or expiring one, one that breaks its layout or invariants) names the
entry's `last_modified_ledger`. When the RPC serves that ledger through `getLedgers`, its
`LedgerCloseMeta` says which transaction changed the entry there (`chain.ledgermeta`, decoding
only the transactions whose bytes hold the entry's key). One `getLedgers` request per distinct
ledger, at most `ORIGIN_MAX_LEDGERS` a run (the most severe findings' ledgers first, then the
newest), and each answer is kept in `recon.ledgers` / `recon.entry_origins`, so a re-run of the
same drift asks the RPC nothing. A ledger the RPC does not serve leaves the finding with its
ledger and the reason.
"""

from __future__ import annotations

import base64
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd

from reconciliation_pipeline.chain.fastxdr import XdrError
from reconciliation_pipeline.chain.keys import instance_key
from reconciliation_pipeline.chain.ledgermeta import Watch, parse_ledger
from reconciliation_pipeline.chain.reader import ChainReader, RetentionWindowError, RpcReadError
from reconciliation_pipeline.chain.replay import fetch_page
from reconciliation_pipeline.core import sql
from reconciliation_pipeline.core.drift import DriftClass
from reconciliation_pipeline.core.results import DomainInputs, StepContext
from reconciliation_pipeline.core.scopes import UPDATED_AT
from reconciliation_pipeline.core.snapshots import data_key_ledger_keys
from reconciliation_pipeline.core.spec import DataKey, DomainSpec, Entity, InstanceOf, PerRow, Scope

NOT_CHAIN_SIDE = frozenset({DriftClass.MISSING_ON_CHAIN.value, DriftClass.INVALID_ADDRESS.value})
"""Findings about no entry on chain, or an address never read."""
WRITES = ("created", "updated", "restored")
_SEVERITY_RANK = {"CRITICAL": 0, "WARN": 1, "INFO": 2}


@dataclass(frozen=True)
class OriginStats:
    ledgers: int
    """Distinct ledgers the run's chain-side findings were last written in."""
    fetched: int
    """getLedgers requests made (one per ledger not already known)."""
    cached: int
    """Findings whose origin recon already knew."""
    not_served: int
    """Ledgers the RPC did not serve."""
    beyond_limit: int
    """Ledgers left unfetched past ORIGIN_MAX_LEDGERS."""

    def as_metadata(self) -> dict[str, int]:
        return {f"origins/{name}": value for name, value in vars(self).items()}


def _ledger_keys(ctx: StepContext, entity: Entity, rows: pd.DataFrame, contract_id: str | None,
                 db: pd.DataFrame) -> pd.Series:
    """The ledger key of each chain row (kept for rows with a problem, rebuilt for the others)."""
    kept = rows["ledger_key"].astype(object)
    missing = kept.isna()
    if not missing.any():
        return kept
    keys = rows.loc[missing, entity.key]
    source = entity.key_source
    if isinstance(source, DataKey):
        if contract_id is None:
            return kept
        built = pd.Series(data_key_ledger_keys(source, entity.kind, contract_id, list(keys)), index=keys.index)
    else:
        matched = db.assign(_key=db[entity.key].astype(str)).drop_duplicates("_key").set_index("_key")
        present = keys.astype(str).isin(matched.index)
        keys = keys[present]
        subset = matched.loc[keys.astype(str)].reset_index(drop=True)
        if isinstance(source, InstanceOf):
            built = pd.Series([instance_key(c) for c in subset[source.column]], index=keys.index, dtype=object)
        else:
            assert isinstance(source, PerRow)
            built = pd.Series(list(source.build(subset, ctx.contracts).keys), index=keys.index, dtype=object)
    return kept.mask(missing, built.reindex(kept.index))


def _targets(ctx: StepContext, spec: DomainSpec, scope: Scope, inputs: DomainInputs,
             findings: pd.DataFrame) -> pd.DataFrame:
    """Per chain-side finding (by index): its entry's ledger key and last_modified_ledger."""
    parts = []
    for entity in spec.entities_of(scope):
        chain = inputs.chains.get(entity.name)
        if chain is None:
            continue
        mine = findings[(findings["entity_type"] == entity.entity_type)
                        & ~findings["drift_class"].isin(NOT_CHAIN_SIDE)
                        & ~findings["details"].map(lambda d: d.get("side") == "database")]
        if mine.empty:
            continue
        rows = chain.frame[chain.frame["last_modified_ledger"].notna()]
        rows = rows[rows[entity.key].astype(str).isin(set(mine["entity_key"]))]
        if rows.empty:
            continue
        keyed = pd.DataFrame({
            "entity_key": rows[entity.key].astype(str).to_numpy(),
            "ledger": rows["last_modified_ledger"].astype("int64").to_numpy(),
            "ledger_key": _ledger_keys(ctx, entity, rows, chain.contract_id,
                                       inputs.rows_of(entity.source_name)).to_numpy(),
        }).drop_duplicates("entity_key")
        joined = mine[["entity_key", "severity"]].reset_index().merge(keyed, on="entity_key", how="inner")
        parts.append(joined[joined["ledger_key"].notna()])
    if not parts:
        return pd.DataFrame(columns=["index", "entity_key", "severity", "ledger", "ledger_key"])
    return pd.concat(parts, ignore_index=True)


def _fetch_origins(reader: ChainReader, ledger: int, keys: set[str]) -> tuple[dict[str, Any] | None, dict[str, tuple],
                                                                               str | None]:
    """One getLedgers request: (the ledger's hash and close time, each key's writer, why not served)."""
    try:
        page = fetch_page(reader, ledger, 1)
    except (RetentionWindowError, RpcReadError) as error:
        return None, {}, str(error)
    info = next((i for i in page.ledgers if i.sequence == ledger), None)
    if info is None:
        return None, {}, f"getLedgers returned no ledger {ledger}"
    closed = {"hash": info.hash, "closed_at": datetime.fromtimestamp(info.ledger_close_time, UTC)}
    try:
        meta = parse_ledger(base64.b64decode(info.metadata_xdr), Watch(keys=frozenset(keys)))
    except XdrError as error:
        return closed, {}, f"its metadata does not parse: {error}"
    writers: dict[str, tuple] = {}
    for change in meta.changes:  # the last write of each key in the ledger is what the entry holds
        if change.change in WRITES and change.key in keys:
            writers[change.key] = (change.tx_hash, change.tx_index, change.op_index, change.change)
    return closed, {k: writers.get(k, (None, None, None, None)) for k in keys}, None


def _cached(ctx: StepContext, pairs: pd.DataFrame) -> pd.DataFrame:
    with ctx.engine.connect() as connection:
        rows = connection.execute(sql.query("recon/queries/origins_read.sql"), {
            "ledger_keys": list(pairs["ledger_key"]), "ledgers": [int(x) for x in pairs["ledger"]]}).mappings().all()
    return pd.DataFrame(rows, columns=["ledger_key", "ledger_sequence", "tx_hash", "transaction_index",
                                       "operation_index", "change", "closed_at"])


def _record(ctx: StepContext, ledgers: dict[int, dict[str, Any]], writers: dict[tuple[str, int], tuple]) -> None:
    with ctx.engine.begin() as connection:
        if ledgers:
            connection.execute(sql.query("recon/queries/ledgers_record.sql"), {
                "ledgers": list(ledgers), "hashes": [v["hash"] for v in ledgers.values()],
                "closed_ats": [v["closed_at"] for v in ledgers.values()]})
        if writers:
            connection.execute(sql.query("recon/queries/origins_record.sql"), {
                "ledger_keys": [k for k, _ in writers], "ledgers": [n for _, n in writers],
                "tx_hashes": [w[0] for w in writers.values()], "transaction_indexes": [w[1] for w in writers.values()],
                "operation_indexes": [w[2] for w in writers.values()], "changes": [w[3] for w in writers.values()]})


def _iso(value: Any) -> str | None:
    if value is None or value is pd.NaT or (isinstance(value, float) and value != value):
        return None
    return pd.Timestamp(value).tz_convert("UTC").isoformat(timespec="seconds")


def _db_written(spec: DomainSpec, scope: Scope, inputs: DomainInputs, findings: pd.DataFrame) -> pd.Series:
    """Per finding: when its database row was last written (`updated_at`), where the source has one."""
    written = pd.Series(None, index=findings.index, dtype=object)
    for entity in spec.entities_of(scope):
        db = inputs.rows_of(entity.source_name)
        if UPDATED_AT not in db.columns or db.empty:
            continue
        times = db.assign(_key=db[entity.key].astype(str)).drop_duplicates("_key").set_index("_key")[UPDATED_AT]
        mine = findings["entity_type"] == entity.entity_type
        written[mine] = findings.loc[mine, "entity_key"].map(times).map(_iso)
    return written


def attach_origins(ctx: StepContext, spec: DomainSpec, scope: Scope, inputs: DomainInputs,
                   findings: pd.DataFrame) -> tuple[pd.DataFrame, OriginStats]:
    """The findings with `origin` (ledger, close time, transaction, operation) for chain-side ones and
    `db_written_at` where the row has an `updated_at`, in their details."""
    if findings.empty:
        return findings, OriginStats(0, 0, 0, 0, 0)
    targets = _targets(ctx, spec, scope, inputs, findings)
    pairs = targets[["ledger_key", "ledger"]].drop_duplicates()
    known = _cached(ctx, pairs) if len(pairs) else _cached(ctx, pairs.iloc[0:0])
    origins: dict[tuple[str, int], dict[str, Any]] = {}
    for row in known.itertuples(index=False):
        origins[(row.ledger_key, int(row.ledger_sequence))] = {
            "tx_hash": row.tx_hash, "transaction_index": _int(row.transaction_index),
            "operation_index": _int(row.operation_index), "change": row.change, "closed_at": _iso(row.closed_at),
            "looked_up": "recon cache"}
    unknown = [(k, int(n)) not in origins for k, n in zip(pairs["ledger_key"], pairs["ledger"], strict=True)]
    wanted = pairs.loc[pd.Series(unknown, index=pairs.index, dtype=bool)]
    order = targets.assign(rank=targets["severity"].map(_SEVERITY_RANK)).groupby("ledger").agg(
        rank=("rank", "min")).reset_index().sort_values(["rank", "ledger"], ascending=[True, False])
    needed = [int(n) for n in order["ledger"] if int(n) in set(wanted["ledger"].astype(int))]
    limit = ctx.settings.origin_max_ledgers
    fetch, skipped = needed[:limit], set(needed[limit:])
    notes: dict[int, str] = {n: f"not looked up: more than ORIGIN_MAX_LEDGERS={limit} ledgers this run"
                             for n in skipped}
    keys_of = wanted.groupby("ledger")["ledger_key"].agg(set)
    fetched_ledgers: dict[int, dict[str, Any]] = {}
    fetched_writers: dict[tuple[str, int], tuple] = {}
    not_served = 0
    if fetch:
        with ctx.reader() as reader, ThreadPoolExecutor(max_workers=reader.settings.max_in_flight,
                                                        thread_name_prefix="origins") as pool:
            results = list(pool.map(lambda n: (n, *_fetch_origins(reader, n, keys_of[n])), fetch))
        for ledger, closed, writers, problem in results:
            if closed is not None:
                fetched_ledgers[ledger] = closed
            if problem is not None:
                notes[ledger] = problem
                not_served += closed is None
            for key, writer in writers.items():
                fetched_writers[(key, ledger)] = writer
                origins[(key, ledger)] = {"tx_hash": writer[0], "transaction_index": writer[1],
                                          "operation_index": writer[2], "change": writer[3],
                                          "closed_at": _iso(closed["closed_at"]) if closed else None,
                                          "looked_up": "getLedgers"}
        _record(ctx, fetched_ledgers, fetched_writers)
    by_index = {int(t.index): (t.ledger_key, int(t.ledger)) for t in targets.itertuples(index=False)}
    written = _db_written(spec, scope, inputs, findings)
    details = []
    for index, current, db_written in zip(findings.index, findings["details"], written, strict=True):
        extra: dict[str, Any] = {}
        if index in by_index:
            key, ledger = by_index[index]
            origin = origins.get((key, ledger))
            extra["origin"] = {"ledger": ledger, **(_describe(origin) if origin is not None else {
                "tx_hash": None, "note": notes.get(ledger, "not looked up")})}
        if isinstance(db_written, str):
            extra["db_written_at"] = db_written
        details.append({**current, **extra} if extra else current)
    cached = sum(1 for i in by_index.values() if origins.get(i, {}).get("looked_up") == "recon cache")
    stats = OriginStats(ledgers=int(pairs["ledger"].nunique()), fetched=len(fetch), cached=cached,
                        not_served=not_served, beyond_limit=len(skipped))
    return findings.assign(details=pd.Series(details, index=findings.index, dtype=object)), stats


def _int(value: Any) -> int | None:
    return None if value is None or value != value else int(value)


def _describe(origin: dict[str, Any]) -> dict[str, Any]:
    described = {k: v for k, v in origin.items() if v is not None}
    if origin.get("tx_hash") is None:
        described["note"] = "no transaction of that ledger changed the entry (seeded, or an upgrade)"
    return described
