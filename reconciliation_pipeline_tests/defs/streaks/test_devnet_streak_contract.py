"""The devnet's streak contract write path, through the unmodified stellar_sdk over HTTP.

Ledgers here close only by hand, so "not applied before the ledger closes" is
observable."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from stellar_sdk import Keypair, SorobanDataBuilder, SorobanServer, TransactionBuilder, TransactionEnvelope, scval, xdr
from stellar_sdk.exceptions import PrepareTransactionException
from stellar_sdk.soroban_rpc import GetTransactionStatus, SendTransactionStatus

from recon_demo.identities import DEVNET, account_id, keypair
from recon_demo.worlds.streaks import oracle_keypair_for_devnet
from reconciliation_pipeline.chain.keys import instance_key
from soroban_devnet.ledger import DevnetLedger
from soroban_devnet.server import DevnetServer
from soroban_devnet.streaks_contract import StreakContract, player_key
from soroban_devnet.transactions import TransactionStore

PASSPHRASE = DEVNET.network_passphrase
ORACLE = oracle_keypair_for_devnet()
PLAYER = account_id("streak-test:player")
STRANGER = account_id("streak-test:stranger")


@pytest.fixture
def manual_ledger() -> DevnetLedger:
    return DevnetLedger(ledger_close_seconds=math.inf)


@pytest.fixture
def contract(manual_ledger: DevnetLedger) -> StreakContract:
    store = TransactionStore(manual_ledger)
    contract = StreakContract(manual_ledger, store, contract_id=DEVNET.streak_contract_id,
                              oracle=ORACLE.public_key).install()
    contract.fund_account(ORACLE.public_key)
    contract.register_player(PLAYER, 3, iq_level=120)
    return contract


@pytest.fixture
def server(manual_ledger: DevnetLedger) -> Iterator[SorobanServer]:
    with DevnetServer(manual_ledger) as devnet, SorobanServer(devnet.url) as client:
        yield client


def sync_tx(server: SorobanServer, source: Keypair, player: str, streak: int) -> TransactionEnvelope:
    account = server.load_account(source.public_key)
    return (
        TransactionBuilder(account, PASSPHRASE, 100)
        .append_invoke_contract_function_op(DEVNET.streak_contract_id, "sync_streak",
                                            [scval.to_address(player), scval.to_uint32(streak)])
        .set_timeout(30)
        .build()
    )


def test_a_sync_is_simulated_signed_sent_and_applied_when_the_ledger_closes(
    contract: StreakContract, manual_ledger: DevnetLedger, server: SorobanServer
) -> None:
    transaction = sync_tx(server, ORACLE, PLAYER, 9)
    simulation = server.simulate_transaction(transaction)
    assert simulation.error is None and simulation.min_resource_fee > 0
    auth = xdr.SorobanAuthorizationEntry.from_xdr(simulation.results[0].auth[0])
    assert auth.credentials.type == xdr.SorobanCredentialsType.SOROBAN_CREDENTIALS_SOURCE_ACCOUNT
    assert auth.root_invocation.function.contract_fn.function_name.sc_symbol == b"sync_streak"
    data = xdr.SorobanTransactionData.from_xdr(simulation.transaction_data)
    assert [k.to_xdr() for k in data.resources.footprint.read_write] == [player_key(DEVNET.streak_contract_id, PLAYER)]
    assert instance_key(DEVNET.streak_contract_id) in [k.to_xdr() for k in data.resources.footprint.read_only]

    prepared = server.prepare_transaction(transaction, simulation)
    prepared.sign(ORACLE)
    sequence = prepared.transaction.sequence
    sent = server.send_transaction(prepared)
    assert sent.status == SendTransactionStatus.PENDING and sent.hash == prepared.hash_hex()
    assert server.get_transaction(sent.hash).status == GetTransactionStatus.NOT_FOUND
    assert contract.profile(PLAYER) == {"current_streak": 3, "iq_level": 120}
    assert server.load_account(ORACLE.public_key).sequence == sequence - 1

    closed_at = manual_ledger.close_ledger()
    found = server.get_transaction(sent.hash)
    assert found.status == GetTransactionStatus.SUCCESS and found.ledger == closed_at
    assert contract.profile(PLAYER) == {"current_streak": 9, "iq_level": 120}
    assert server.load_account(ORACLE.public_key).sequence == sequence
    result = xdr.TransactionResult.from_xdr(found.result_xdr)
    assert result.result.code == xdr.TransactionResultCode.txSUCCESS
    assert result.result.results[0].tr.invoke_host_function_result.code.name == "INVOKE_HOST_FUNCTION_SUCCESS"
    meta = xdr.TransactionMeta.from_xdr(found.result_meta_xdr)
    assert meta.v == 4 and meta.v4.operations[0].changes.ledger_entry_changes[1].updated is not None
    assert TransactionEnvelope.from_xdr(found.envelope_xdr, PASSPHRASE).hash_hex() == sent.hash

    events = server.get_events(start_ledger=closed_at, filters=[]).events
    assert len(events) == 1 and events[0].transaction_hash == sent.hash
    assert [xdr.SCVal.from_xdr(t) for t in events[0].topic] == [scval.to_symbol("streak_synced"), scval.to_address(PLAYER)]
    assert scval.from_uint32(xdr.SCVal.from_xdr(events[0].value)) == 9


def test_an_unknown_player_is_contract_error_1_in_simulation_and_when_sent(
    contract: StreakContract, manual_ledger: DevnetLedger, server: SorobanServer
) -> None:
    transaction = sync_tx(server, ORACLE, STRANGER, 4)
    with pytest.raises(PrepareTransactionException) as raised:
        server.prepare_transaction(transaction)
    assert "Error(Contract, #1)" in raised.value.simulate_transaction_response.error

    # Sent anyway, with resources and the oracle's auth built by hand: it fails on chain.
    invocation = transaction.transaction.operations[0]
    invocation.auth = [xdr.SorobanAuthorizationEntry(
        credentials=xdr.SorobanCredentials(xdr.SorobanCredentialsType.SOROBAN_CREDENTIALS_SOURCE_ACCOUNT),
        root_invocation=xdr.SorobanAuthorizedInvocation(
            function=xdr.SorobanAuthorizedFunction(
                xdr.SorobanAuthorizedFunctionType.SOROBAN_AUTHORIZED_FUNCTION_TYPE_CONTRACT_FN,
                contract_fn=invocation.host_function.invoke_contract,
            ),
            sub_invocations=[],
        ),
    )]
    transaction.transaction.soroban_data = (
        SorobanDataBuilder().set_resource_fee(100_000)
        .set_read_write([xdr.LedgerKey.from_xdr(player_key(DEVNET.streak_contract_id, STRANGER))]).build()
    )
    transaction.transaction.fee += 100_000
    transaction.sign(ORACLE)
    sent = server.send_transaction(transaction)
    assert sent.status == SendTransactionStatus.PENDING
    manual_ledger.close_ledger()
    found = server.get_transaction(sent.hash)
    assert found.status == GetTransactionStatus.FAILED
    assert xdr.TransactionResult.from_xdr(found.result_xdr).result.code == xdr.TransactionResultCode.txFAILED
    diagnostic = xdr.TransactionMeta.from_xdr(found.result_meta_xdr).v4.diagnostic_events[0].event.body.v0
    assert diagnostic.topics[1].error.contract_code.uint32 == 1
    assert contract.profile(STRANGER) is None


def test_only_the_oracle_may_sync(contract: StreakContract, manual_ledger: DevnetLedger, server: SorobanServer) -> None:
    impostor = keypair("streak-test:impostor")
    contract.fund_account(impostor.public_key)
    transaction = sync_tx(server, impostor, PLAYER, 50)
    simulation = server.simulate_transaction(transaction)
    auth = xdr.SorobanAuthorizationEntry.from_xdr(simulation.results[0].auth[0])
    assert auth.credentials.type == xdr.SorobanCredentialsType.SOROBAN_CREDENTIALS_ADDRESS  # the oracle must sign
    prepared = server.prepare_transaction(transaction, simulation)
    prepared.sign(impostor)
    sent = server.send_transaction(prepared)
    assert sent.status == SendTransactionStatus.PENDING
    manual_ledger.close_ledger()
    found = server.get_transaction(sent.hash)
    assert found.status == GetTransactionStatus.FAILED
    error = xdr.TransactionMeta.from_xdr(found.result_meta_xdr).v4.diagnostic_events[0].event.body.v0.topics[1].error
    assert error.type == xdr.SCErrorType.SCE_AUTH
    assert contract.profile(PLAYER)["current_streak"] == 3


def test_signatures_must_be_the_sources_for_this_network(
    contract: StreakContract, manual_ledger: DevnetLedger, server: SorobanServer
) -> None:
    prepared = server.prepare_transaction(sync_tx(server, ORACLE, PLAYER, 5))
    prepared.sign(keypair("streak-test:someone-else"))
    rejected = server.send_transaction(prepared)
    assert rejected.status == SendTransactionStatus.ERROR
    assert xdr.TransactionResult.from_xdr(rejected.error_result_xdr).result.code == xdr.TransactionResultCode.txBAD_AUTH

    other_network = TransactionEnvelope.from_xdr(prepared.to_xdr(), "Test SDF Network ; September 2015")
    other_network.signatures = []
    other_network.sign(ORACLE)
    rejected = server.send_transaction(other_network)
    assert rejected.status == SendTransactionStatus.ERROR
    assert xdr.TransactionResult.from_xdr(rejected.error_result_xdr).result.code == xdr.TransactionResultCode.txBAD_AUTH
    manual_ledger.close_ledger()
    assert contract.profile(PLAYER)["current_streak"] == 3


def test_one_pending_transaction_per_source_and_sequence_numbers_are_checked(
    contract: StreakContract, manual_ledger: DevnetLedger, server: SorobanServer
) -> None:
    first = server.prepare_transaction(sync_tx(server, ORACLE, PLAYER, 6))
    first.sign(ORACLE)
    assert server.send_transaction(first).status == SendTransactionStatus.PENDING
    assert server.send_transaction(first).status == SendTransactionStatus.DUPLICATE
    second = server.prepare_transaction(sync_tx(server, ORACLE, PLAYER, 7))  # same sequence number as `first`
    second.sign(ORACLE)
    assert server.send_transaction(second).status == SendTransactionStatus.TRY_AGAIN_LATER

    manual_ledger.close_ledger()
    stale = server.send_transaction(second)
    assert stale.status == SendTransactionStatus.ERROR
    assert xdr.TransactionResult.from_xdr(stale.error_result_xdr).result.code == xdr.TransactionResultCode.txBAD_SEQ
    assert contract.profile(PLAYER)["current_streak"] == 6
