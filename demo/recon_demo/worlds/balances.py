"""Users' USDC balances on both sides, with a catalogue of injected drift.

The database side is `users` (wallet address, `usdc_balance`); the chain side
is each G... holder's USDC trustline and each C... holder's balance entry on
the USDC Stellar Asset Contract (CONTRACTS.md §6). Both start equal; each
injection changes one side and writes down, once, the findings the pipeline
must report. Users get ids from `first_user_id` on so the world can share the
`users` table with other domains' demo users.

The catalogue ends with a burst of RPC failures: the `getLedgerEntries`
request carrying the last batch of holders fails on every attempt. Holders are
read in user-id order, `batch_size` per request (the RPC resource's batch
size), so that batch is known in advance: its users are the burst's findings.
Apply it with `ledger.faults = world.rpc_burst`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sqlalchemy.engine import Engine
from stellar_sdk import Asset, Keypair, scval, xdr

from recon_demo import DEMO_SQL
from recon_demo.catalogue import ExpectedFinding, InjectedDrift, expected_findings
from recon_demo.encode import sac_balance_entry
from recon_demo.identities import DEVNET, DevnetIdentities, account_id, contract_id
from reconciliation_pipeline.chain.addresses import is_valid_address
from reconciliation_pipeline.chain.keys import sac_balance_key, trustline_key
from reconciliation_pipeline.chain.reader import MAX_KEYS_PER_REQUEST
from reconciliation_pipeline.core.drift import WHOLE_ENTITY, DriftClass, Severity
from soroban_devnet.ledger import DevnetLedger, FaultConfig

FIRST_USER_ID = 1_000_001
MIN_USERS = 250
"""Enough for the catalogue (the first 20 users) and a separate last batch for the burst."""
INVALID_WALLET = "GUSER5WALLETISNOTAVALIDSTELLARADDRESS"


@dataclass
class BalancesWorld:
    db: pd.DataFrame
    """Rows of `users`: user_id, username, wallet_address (None = no wallet), usdc_balance."""
    trustlines: pd.DataFrame
    """USDC trustlines on chain: account (G...), balance."""
    sac_balances: pd.DataFrame
    """Balance entries on the USDC SAC: holder (C...), amount."""
    rpc_burst: FaultConfig
    """Faults that make the burst's request fail on every attempt."""
    catalogue: list[InjectedDrift] = field(default_factory=list)
    identities: DevnetIdentities = DEVNET

    @property
    def users_without_wallet(self) -> int:
        return int(self.db["wallet_address"].map(lambda w: w is None or not str(w).strip()).sum())

    def expected_findings(self, *, with_burst: bool = True) -> pd.DataFrame:
        return expected_findings(d for d in self.catalogue if with_burst or d.name != RPC_BURST)


RPC_BURST = "rpc_burst_last_batch"


def user_id(k: int, first_user_id: int = FIRST_USER_ID) -> int:
    """The id of the world's k-th user (k from 1)."""
    return first_user_id + k - 1


def _finding(uid: int, drift_class: DriftClass, field_name: str, db_value: object = None,
             chain_value: object = None) -> ExpectedFinding:
    return ExpectedFinding(
        entity_type="user",
        entity_id=f"user_{uid}",
        field=field_name,
        drift_class=drift_class.value,
        severity=Severity.WARN.value,
        db_value=None if db_value is None else str(db_value),
        chain_value=None if chain_value is None else str(chain_value),
    )


def _clean_users(n: int, first_user_id: int, seed: int) -> pd.DataFrame:
    """Every 10th user has no wallet; every 5th (from the 1st) holds USDC in a contract wallet."""
    rng = np.random.default_rng(seed)
    ks = np.arange(1, n + 1)
    wallets = [None if k % 10 == 0 else contract_id(f"user-wallet:{k}") if k % 5 == 1 else account_id(f"user:{k}")
               for k in ks]
    return pd.DataFrame(
        {
            "user_id": [user_id(int(k), first_user_id) for k in ks],
            "username": [f"trader_{k}" for k in ks],
            "wallet_address": pd.Series(wallets, dtype=object),
            "usdc_balance": rng.integers(0, 100_000_000_000, size=n, dtype=np.int64).astype(object),
        }
    )


def build_balances_world(
    n: int,
    *,
    first_user_id: int = FIRST_USER_ID,
    batch_size: int = MAX_KEYS_PER_REQUEST,
    seed: int = 20261123,
    ids: DevnetIdentities = DEVNET,
) -> BalancesWorld:
    """`n` users on both sides with the catalogue injected (including the RPC burst)."""
    if n < MIN_USERS:
        raise ValueError(f"the balances world needs at least {MIN_USERS} users to hold its catalogue, got {n}")
    db = _clean_users(n, first_user_id, seed)
    db = db.set_index(db["user_id"].map(lambda u: u - first_user_id + 1).rename("k"))
    chain_balance = db["usdc_balance"].copy()
    absent: set[int] = set()
    catalogue: list[InjectedDrift] = []

    def uid(k: int) -> int:
        return user_id(k, first_user_id)

    db.at[2, "usdc_balance"], chain_balance[2] = 1_000_000_000, 999_000_000
    catalogue.append(InjectedDrift(
        "user_2_balance_mismatch",
        "The app credits 0.1 USDC the user's trustline does not hold (a withdrawal it never recorded).",
        (_finding(uid(2), DriftClass.VALUE_MISMATCH, "usdc_balance", 1_000_000_000, 999_000_000),),
    ))
    db.at[3, "usdc_balance"], chain_balance[3] = 123_456_789, 123_456_782
    catalogue.append(InjectedDrift(
        "user_3_within_tolerance", "7 base units apart: within the 10-unit tolerance, no finding.", ()))
    absent.add(4)
    catalogue.append(InjectedDrift(
        "user_4_missing_trustline",
        "The user's G... wallet has no USDC trustline, so it holds no USDC; the app shows a balance.",
        (_finding(uid(4), DriftClass.MISSING_ON_CHAIN, "trustline"),),
    ))
    db.at[5, "wallet_address"] = INVALID_WALLET
    catalogue.append(InjectedDrift(
        "user_5_invalid_wallet",
        "The app stored a wallet that is not a valid Stellar address; it is never queried.",
        (_finding(uid(5), DriftClass.INVALID_ADDRESS, "wallet_address", INVALID_WALLET),),
    ))
    db.at[6, "usdc_balance"], chain_balance[6] = 2_400_000_000, 2_500_000_000
    catalogue.append(InjectedDrift(
        "user_6_contract_wallet_mismatch",
        "A contract wallet's balance on the USDC SAC is 10 USDC above what the app shows.",
        (_finding(uid(6), DriftClass.VALUE_MISMATCH, "usdc_balance", 2_400_000_000, 2_500_000_000),),
    ))
    db.at[7, "usdc_balance"], chain_balance[7] = 70_000_010, 70_000_000
    catalogue.append(InjectedDrift(
        "user_7_at_tolerance", "Exactly 10 base units apart: at the tolerance, no finding.", ()))
    db.at[8, "usdc_balance"], chain_balance[8] = 80_000_011, 80_000_000
    catalogue.append(InjectedDrift(
        "user_8_just_beyond_tolerance", "11 base units apart: one beyond the tolerance.",
        (_finding(uid(8), DriftClass.VALUE_MISMATCH, "usdc_balance", 80_000_011, 80_000_000),),
    ))
    db.at[9, "usdc_balance"], chain_balance[9] = -5, 0
    catalogue.append(InjectedDrift(
        "user_9_negative_balance",
        "The app stored a negative balance (within tolerance of the chain's 0, but impossible).",
        (_finding(uid(9), DriftClass.INVARIANT_VIOLATION, "usdc_balance", -5),),
    ))
    db.at[11, "usdc_balance"] = 50_000_000
    absent.add(11)
    catalogue.append(InjectedDrift(
        "user_11_contract_wallet_without_balance_entry",
        "A contract wallet never received USDC (no SAC balance entry: its balance is 0); the app shows 5 USDC.",
        (_finding(uid(11), DriftClass.VALUE_MISMATCH, "usdc_balance", 50_000_000, 0),),
    ))
    db.at[12, "wallet_address"] = "   "
    catalogue.append(InjectedDrift(
        "users_without_wallet",
        "Every 10th user and user 12 (a blank wallet) have no wallet: skipped, counted, never queried.",
        (),
    ))

    wallets = db["wallet_address"]
    read = db[wallets.map(lambda w: w is not None and is_valid_address(w))].sort_values("user_id")
    last_batch = read.iloc[(len(read) - 1) // batch_size * batch_size:]
    if last_batch.index.min() <= 20:
        raise ValueError("the burst's batch would overlap the catalogue: use more users or a smaller batch")
    last_key = _ledger_key(last_batch.iloc[-1]["wallet_address"], ids)
    catalogue.append(InjectedDrift(
        RPC_BURST,
        f"The request carrying the last {len(last_batch)} holders fails on every attempt: each is a "
        "CHAIN_READ_ERROR, every other holder is still reconciled.",
        tuple(_finding(u, DriftClass.CHAIN_READ_ERROR, WHOLE_ENTITY) for u in last_batch["user_id"]),
    ))

    on_chain = read[~read.index.isin(sorted(absent))]
    is_account = on_chain["wallet_address"].str.startswith("G").to_numpy(dtype=bool)
    accounts, contracts = on_chain[is_account], on_chain[~is_account]
    trustlines = pd.DataFrame({"account": accounts["wallet_address"], "balance": chain_balance[accounts.index]})
    sac_balances = pd.DataFrame({"holder": contracts["wallet_address"], "amount": chain_balance[contracts.index]})
    return BalancesWorld(
        db=db.reset_index(drop=True),
        trustlines=trustlines.reset_index(drop=True),
        sac_balances=sac_balances.reset_index(drop=True),
        rpc_burst=FaultConfig(poison_keys=frozenset({last_key})),
        catalogue=catalogue,
        identities=ids,
    )


def _ledger_key(wallet: str, ids: DevnetIdentities) -> str:
    if wallet.startswith("G"):
        return trustline_key(wallet, ids.usdc_asset_code, ids.usdc_issuer)
    return sac_balance_key(ids.usdc_contract_id, wallet)


# -- writing it to both sides --------------------------------------------------

TRUSTLINE_LIMIT = 2**63 - 1

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




def write_balances_to_db(engine: Engine, world: BalancesWorld) -> int:
    """Insert or update the world's users; other users in the table are left as they are."""
    params = [
        {"id": int(r.user_id), "username": r.username,
         "wallet_address": r.wallet_address if isinstance(r.wallet_address, str) else None,
         "usdc_balance": str(r.usdc_balance)}
        for r in world.db.itertuples(index=False)
    ]
    with engine.begin() as connection:
        connection.execute(DEMO_SQL.query("seed/balances_upsert_user.sql"), params)
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
            DEMO_SQL.query("seed/balances_other_holders.sql"),
            {"seeded_ids": [int(u) for u in world.db["user_id"]]},
        ).mappings().all(), columns=["user_id", "wallet_address", "usdc_balance"])
    count = 0
    for row in others.itertuples(index=False):
        if is_valid_address(row.wallet_address):
            _put_holding(ledger, world.identities, row.wallet_address, max(int(row.usdc_balance), 0))
            count += 1
    return count
