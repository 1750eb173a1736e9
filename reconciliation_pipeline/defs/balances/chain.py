"""Reading users' USDC holdings: trustlines for G... wallets, SAC balance entries for C... wallets.

Both kinds of key go out together, 200 per `getLedgerEntries` request, in
user-id order. The two kinds differ when there is no entry: a G... account
without a USDC trustline cannot hold USDC (reported as a missing trustline,
never read as 0), while a C... contract with no balance entry on the SAC holds
0 (that is what the SAC's own `balance()` returns).
"""

from __future__ import annotations

import pandas as pd

from reconciliation_pipeline.chain import strkey
from reconciliation_pipeline.chain.keys import sac_balance_key, trustline_key
from reconciliation_pipeline.chain.reader import ChainReader, ProgressCallback
from reconciliation_pipeline.core.snapshots import READ_MISSING, READ_OK
from reconciliation_pipeline.core.spec import ReconSpec
from reconciliation_pipeline.defs.balances.spec import BALANCE_FIELD, WALLET_FIELD
from reconciliation_pipeline.defs.markets.chain import snapshot_ledger_keys

ACCOUNT = "account"
CONTRACT = "contract"
HOLDER_KIND_FIELD = "holder_kind"


def holder_kinds(wallets: pd.Series) -> pd.Series:
    """`account` (G...), `contract` (C...) or None (not a valid address). Each value checked once."""
    uniques = pd.unique(wallets.astype(object))
    kinds = {w: ACCOUNT if strkey.is_account(w) else CONTRACT if strkey.is_contract(w) else None for w in uniques}
    return wallets.astype(object).map(kinds).astype(object)


def snapshot_usdc_balances(
    reader: ChainReader,
    spec: ReconSpec,
    holders: pd.DataFrame,
    *,
    asset_code: str,
    issuer: str,
    sac_contract_id: str,
    progress: ProgressCallback | None = None,
) -> pd.DataFrame:
    """Each holder's USDC balance as the chain has it, read in user-id order.

    `holders` has `user_id`, a valid `wallet_address` and its `holder_kind`.
    Besides the usual chain-frame columns: `holder_kind`, and `balance_entry`
    (`present` or `absent`; a contract without a SAC entry is read as holding 0).
    """
    holders = holders.sort_values(spec.key_column)
    kinds = holders[HOLDER_KIND_FIELD]
    keys = pd.Series(
        [trustline_key(w, asset_code, issuer) if k == ACCOUNT else sac_balance_key(sac_contract_id, w)
         for w, k in zip(holders[WALLET_FIELD], kinds, strict=True)],
        index=holders.index,
        dtype=object,
    )
    entities = holders[[spec.key_column, WALLET_FIELD, HOLDER_KIND_FIELD]]
    frame = snapshot_ledger_keys(reader, spec, entities, keys, progress)
    entry = {READ_OK: "present", READ_MISSING: "absent"}
    frame["balance_entry"] = frame["read_status"].map(lambda status: entry.get(status)).astype(object)
    no_sac_entry = (frame["read_status"] == READ_MISSING) & (frame["holder_kind"] == CONTRACT)
    frame.loc[no_sac_entry, BALANCE_FIELD] = 0
    frame.loc[no_sac_entry, "read_status"] = READ_OK
    frame[BALANCE_FIELD] = frame[BALANCE_FIELD].astype(object)
    return frame
