"""Writing the markets and balances worlds to both sides: the app database and the devnet.

The devnet gets real XDR: `Pool(u64)` contract data on the AMM, each market
contract's instance (a Wasm executable and its storage map), classic
`TrustLine` entries and `Balance(Address)` entries on the USDC SAC.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pandas as pd
from sqlalchemy.engine import Engine
from stellar_sdk import Asset, Keypair, scval, xdr

from reconciliation_pipeline.chain.addresses import is_valid_address
from reconciliation_pipeline.chain.keys import enum_key, instance_key, trustline_key, u64_entry_key
from reconciliation_pipeline.core import sql
from reconciliation_pipeline.devnet.balances_world import BalancesWorld
from reconciliation_pipeline.devnet.encode import contract_data_entry, sac_balance_entry, unit_enum
from reconciliation_pipeline.devnet.identities import DevnetIdentities
from reconciliation_pipeline.devnet.ledger import DevnetLedger
from reconciliation_pipeline.devnet.markets_world import MarketsWorld

TRUSTLINE_LIMIT = 2**63 - 1
_MARKET_WASM_HASH = hashlib.sha256(b"reconciliation-devnet:market-contract-wasm").digest()


# -- XDR ------------------------------------------------------------------------


def pool_entry(amm_contract_id: str, market_id: int, yes_liquidity: int, no_liquidity: int) -> tuple[str, str]:
    """(LedgerKey, LedgerEntryData) of `Pool(u64) -> Pool { no_liquidity, yes_liquidity }`."""
    key = enum_key("Pool", scval.to_uint64(market_id))
    value = scval.to_struct({"no_liquidity": scval.to_int128(no_liquidity),
                             "yes_liquidity": scval.to_int128(yes_liquidity)})
    return (u64_entry_key(amm_contract_id, "Pool", market_id),
            contract_data_entry(amm_contract_id, key, value).to_xdr())


def market_instance_entry(contract: str, status: str, winning_outcome: int | None) -> tuple[str, str]:
    """(LedgerKey, LedgerEntryData) of a market contract's instance: `Status` and `Outcome`."""
    storage = scval.to_map({
        scval.to_symbol("Status"): unit_enum(status.capitalize()),
        scval.to_symbol("Outcome"): scval.to_void() if winning_outcome is None else scval.to_uint32(winning_outcome),
    })
    instance = xdr.SCVal(
        type=xdr.SCValType.SCV_CONTRACT_INSTANCE,
        instance=xdr.SCContractInstance(
            executable=xdr.ContractExecutable(
                type=xdr.ContractExecutableType.CONTRACT_EXECUTABLE_WASM, wasm_hash=xdr.Hash(_MARKET_WASM_HASH)
            ),
            storage=storage.map,
        ),
    )
    key = xdr.SCVal(type=xdr.SCValType.SCV_LEDGER_KEY_CONTRACT_INSTANCE)
    return instance_key(contract), contract_data_entry(contract, key, instance).to_xdr()


def trustline_entry(account: str, asset_code: str, issuer: str, balance: int) -> tuple[str, str]:
    """(LedgerKey, LedgerEntryData) of a classic, authorised trustline holding `balance`."""
    data = xdr.LedgerEntryData(
        type=xdr.LedgerEntryType.TRUSTLINE,
        trust_line=xdr.TrustLineEntry(
            account_id=Keypair.from_public_key(account).xdr_account_id(),
            asset=Asset(asset_code, issuer).to_trust_line_asset_xdr_object(),
            balance=xdr.Int64(balance),
            limit=xdr.Int64(TRUSTLINE_LIMIT),
            flags=xdr.Uint32(xdr.TrustLineFlags.AUTHORIZED_FLAG.value),
            ext=xdr.TrustLineEntryExt(0),
        ),
    )
    return trustline_key(account, asset_code, issuer), data.to_xdr()


# -- markets ----------------------------------------------------------------------


def write_markets_to_db(engine: Engine, world: MarketsWorld) -> int:
    """Replace the `markets` table's rows with the world's database side (COPY)."""
    now = datetime.now(UTC)
    with engine.begin() as connection:
        connection.execute(sql.query("seed/markets_truncate.sql"))
        cursor = connection.connection.driver_connection.cursor()
        with cursor.copy(sql.read_sql("seed/markets_copy.sql")) as copy:
            for row in world.db.itertuples(index=False):
                copy.write_row((str(row.market_id), row.title, row.contract_address, row.status,
                                row.winning_outcome, str(row.yes_liquidity), str(row.no_liquidity), now))
    return len(world.db)


def load_markets_into_ledger(ledger: DevnetLedger, world: MarketsWorld) -> int:
    """Put the AMM pools and the market contracts' instances into the devnet."""
    amm = world.identities.amm_contract_id
    for row in world.pools.itertuples(index=False):
        ledger.put_raw_entry(*pool_entry(amm, int(row.market_id), int(row.yes_liquidity), int(row.no_liquidity)))
    for market_id, data in world.undecodable_pools.items():
        ledger.put_raw_entry(u64_entry_key(amm, "Pool", market_id), data)
    for row in world.contracts.itertuples(index=False):
        ledger.put_raw_entry(*market_instance_entry(row.contract_address, row.status, row.winning_outcome))
    return len(world.pools) + len(world.undecodable_pools) + len(world.contracts)


# -- balances ---------------------------------------------------------------------


def write_balances_to_db(engine: Engine, world: BalancesWorld) -> int:
    """Insert or update the world's users; other users in the table are left as they are."""
    params = [
        {"id": int(r.user_id), "username": r.username,
         "wallet_address": r.wallet_address if isinstance(r.wallet_address, str) else None,
         "usdc_balance": str(r.usdc_balance)}
        for r in world.db.itertuples(index=False)
    ]
    with engine.begin() as connection:
        connection.execute(sql.query("seed/balances_upsert_user.sql"), params)
    return len(params)


def _put_holding(ledger: DevnetLedger, ids: DevnetIdentities, holder: str, amount: int) -> None:
    if holder.startswith("G"):
        ledger.put_raw_entry(*trustline_entry(holder, ids.usdc_asset_code, ids.usdc_issuer, amount))
    else:
        ledger.put_raw_entry(*sac_balance_entry(ids.usdc_contract_id, holder, amount))


def mint_usdc(ledger: DevnetLedger, ids: DevnetIdentities, holder: str, new_balance: int, amount: int) -> str:
    """The issuer pays `amount` USDC to `holder`, whose balance becomes `new_balance`, in the
    latest ledger: the holding's entry changes and, as on a protocol 23 network (CAP-67
    unified events), the USDC SAC emits `mint` [Symbol, Address(to), String(asset)]
    whether the holder is a trustline or a SAC balance. Returns the event id."""
    _put_holding(ledger, ids, holder, new_balance)
    asset = f"{ids.usdc_asset_code}:{ids.usdc_issuer}"
    return ledger.add_event(
        contract_id=ids.usdc_contract_id,
        topic=[scval.to_symbol("mint"), scval.to_address(holder), scval.to_string(asset)],
        value=scval.to_int128(amount),
    )


def transfer_usdc(ledger: DevnetLedger, ids: DevnetIdentities, sender: tuple[str, int], recipient: tuple[str, int],
                  amount: int) -> str:
    """`amount` USDC moves between two holders, given as (address, new balance): both
    entries change and the SAC emits `transfer` [Symbol, Address(from), Address(to),
    String(asset)]. Returns the event id."""
    _put_holding(ledger, ids, *sender)
    _put_holding(ledger, ids, *recipient)
    asset = f"{ids.usdc_asset_code}:{ids.usdc_issuer}"
    return ledger.add_event(
        contract_id=ids.usdc_contract_id,
        topic=[scval.to_symbol("transfer"), scval.to_address(sender[0]), scval.to_address(recipient[0]),
               scval.to_string(asset)],
        value=scval.to_int128(amount),
    )


def load_balances_into_ledger(ledger: DevnetLedger, world: BalancesWorld) -> int:
    """Put the world's USDC trustlines and SAC balance entries into the devnet."""
    ids = world.identities
    for row in world.trustlines.itertuples(index=False):
        _put_holding(ledger, ids, row.account, int(row.balance))
    for row in world.sac_balances.itertuples(index=False):
        _put_holding(ledger, ids, row.holder, int(row.amount))
    return len(world.trustlines) + len(world.sac_balances)


def mirror_other_holders_into_ledger(engine: Engine, ledger: DevnetLedger, world: BalancesWorld) -> int:
    """Give users other domains seeded (with a valid wallet) their database balance on chain.

    The balances reconciliation covers every user with a wallet; without this a
    demo that also seeds, say, streak players would report each as drift that no
    catalogue wrote down.
    """
    with engine.connect() as connection:
        others = pd.DataFrame(connection.execute(
            sql.query("seed/balances_other_holders.sql"),
            {"seeded_ids": [int(u) for u in world.db["user_id"]]},
        ).mappings().all(), columns=["user_id", "wallet_address", "usdc_balance"])
    count = 0
    for row in others.itertuples(index=False):
        if is_valid_address(row.wallet_address):
            _put_holding(ledger, world.identities, row.wallet_address, max(int(row.usdc_balance), 0))
            count += 1
    return count
