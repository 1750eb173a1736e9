"""Reading entries addressed per entity, many entities per request.

`core.snapshots.snapshot_chain` reads entries keyed by a `DataKey` on one
contract. Some entities are addressed otherwise: each market has its own
contract (its instance storage, by `markets.contract_address`), and a USDC
holder's balance is a trustline or a SAC entry depending on its address.
`snapshot_ledger_keys` reads any such per-entity keys, still 200 per
`getLedgerEntries` request, into the same frame shape as `snapshot_chain`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pandas as pd

from reconciliation_pipeline.chain.decode import DecodeError
from reconciliation_pipeline.chain.keys import instance_key
from reconciliation_pipeline.chain.reader import ChainReader, LedgerReadResult, ProgressCallback
from reconciliation_pipeline.core.snapshots import CHAIN_META_COLUMNS, READ_ERROR, READ_MISSING, READ_OK, READ_UNCHANGED
from reconciliation_pipeline.core.spec import ReconSpec

if TYPE_CHECKING:
    from reconciliation_pipeline.core.entry_versions import KnownVersions


def _entry_row(
    key: Any, ledger_key: str, result: LedgerReadResult, spec: ReconSpec, versions: KnownVersions | None
) -> dict[str, Any]:
    """What one entity's read came to, in the `snapshot_chain` row shape."""
    fetched = result.entries.get(ledger_key)
    if fetched is None:
        if ledger_key in result.failed:
            return {"read_status": READ_ERROR, "read_error": f"read failed: {result.failed[ledger_key]}"}
        return {"read_status": READ_MISSING, "ledger_sequence": result.latest_ledger}
    row: dict[str, Any] = {
        "last_modified_ledger": fetched.last_modified_ledger,
        "live_until_ledger": fetched.live_until_ledger,
        "ledger_sequence": fetched.read_at_ledger,
    }
    if versions is not None and versions.unchanged(key, fetched.last_modified_ledger):
        return {**row, "read_status": READ_UNCHANGED}
    row["raw_xdr"] = fetched.data_xdr
    try:
        row.update(spec.layout.decode(fetched.data_xdr), read_status=READ_OK)
    except DecodeError as error:
        row.update(read_status=READ_ERROR, read_error=f"undecodable entry: {error}")
    return row


def snapshot_ledger_keys(
    reader: ChainReader,
    spec: ReconSpec,
    entities: pd.DataFrame,
    ledger_keys: pd.Series,
    progress: ProgressCallback | None = None,
    versions: KnownVersions | None = None,
) -> pd.DataFrame:
    """Read each entity's entry at its own ledger key; every entity gets a row.

    `entities` holds the spec's key column (and any columns worth keeping beside
    the read, e.g. the address read from); `ledger_keys` is aligned with it and
    read in its order. Columns and `read_status` mean what they mean in
    `snapshot_chain`'s frame, `unchanged` included.
    """
    result = reader.get_entries(list(ledger_keys), progress=progress)
    # Filled column by column (not a dict per row): at a million entities the frame
    # constructor's per-record work would cost more than the reads.
    columns = [c for c in (*spec.layout.columns, *CHAIN_META_COLUMNS) if c != "ledger_key"]
    data: dict[str, list[Any]] = {column: [None] * len(entities) for column in columns}
    for position, (key, ledger_key) in enumerate(zip(entities[spec.key_column], ledger_keys, strict=True)):
        for column, value in _entry_row(key, ledger_key, result, spec, versions).items():
            data[column][position] = value
    rows = pd.DataFrame({column: pd.Series(values, index=entities.index, dtype=object)
                         for column, values in data.items()})
    # Like `snapshot_chain`, the ledger key is kept only where a finding may need it.
    kept_keys = ledger_keys.astype(object).where(rows["read_status"] != READ_OK, None)
    frame = pd.concat([entities.astype(object), kept_keys.rename("ledger_key"), rows], axis=1)
    frame = frame.reset_index(drop=True)
    if len(frame):
        frame[spec.key_column] = spec.normalize_keys(frame[spec.key_column])
    frame.attrs.update(
        ledger_sequence=result.latest_ledger,
        rpc_requests=result.requests,
        failed_batches=result.failed_batches,
        entries_unchanged=int((frame["read_status"] == READ_UNCHANGED).sum()),
    )
    return frame


def snapshot_market_contracts(
    reader: ChainReader,
    spec: ReconSpec,
    markets: pd.DataFrame,
    progress: ProgressCallback | None = None,
    versions: KnownVersions | None = None,
) -> pd.DataFrame:
    """Status and outcome from the instance storage of each market's contract.

    `markets` holds `market_id` and a valid `contract_address`.
    """
    entities = markets[[spec.key_column, "contract_address"]]
    return snapshot_ledger_keys(reader, spec, entities, entities["contract_address"].map(instance_key), progress,
                                versions)
