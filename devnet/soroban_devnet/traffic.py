"""Transactions shaped like a public network's, built with the SDK's XDR classes.

A busy ledger is mostly classic traffic (payments, path payments crossing
offers and pools, offer management) and Soroban invocations of contracts
nobody here watches, each with its real result and meta: fee and sequence
changes on accounts with signers and extensions, trustlines, offers, pools,
contract data with its TTL entries, contract events, CAP-67 asset events, fee
events, diagnostic events, authorization entries. `TrafficMaker` builds such
transactions (`kind` picks the shape, `rng` varies every value) as raw XDR
(envelope, result, meta); the replay benchmark fills ledgers with them and the
ledger-metadata reader's tests check that it skips each shape to the byte.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Sequence

from stellar_sdk import Asset, Keypair, StrKey, scval, xdr

KINDS = ("payment", "path_payment", "manage_offer", "invoke", "fee_bump_payment", "create_account", "change_trust")
"""The shapes of transactions touching no watched contract."""


_SPONSOR = Keypair.from_raw_ed25519_seed(bytes(range(32))).public_key


def _account(rng: random.Random) -> str:
    return Keypair.from_raw_ed25519_seed(rng.randbytes(32)).public_key


def _contract(rng: random.Random) -> str:
    return StrKey.encode_contract(rng.randbytes(32))


def _asset(rng: random.Random) -> xdr.Asset:
    code = rng.choice(["USDC", "EURC", "yXLM", "AQUA", "SHX", "LONGASSETCD1"])
    return Asset(code, _account(rng)).to_xdr_object()


def _muxed(account: str) -> xdr.MuxedAccount:
    return Keypair.from_public_key(account).xdr_muxed_account()


def _account_id(account: str) -> xdr.AccountID:
    return Keypair.from_public_key(account).xdr_account_id()


def _hash(rng: random.Random) -> xdr.Hash:
    return xdr.Hash(rng.randbytes(32))


def _entry(data: xdr.LedgerEntryData, ledger: int, sponsored: bool = False) -> xdr.LedgerEntry:
    ext = (xdr.LedgerEntryExt(1, v1=xdr.LedgerEntryExtensionV1(
        sponsoring_id=xdr.SponsorshipDescriptor(_account_id(_SPONSOR)), ext=xdr.LedgerEntryExtensionV1Ext(0)))
           if sponsored else xdr.LedgerEntryExt(0))
    return xdr.LedgerEntry(last_modified_ledger_seq=xdr.Uint32(ledger), data=data, ext=ext)


def _state_updated(before: xdr.LedgerEntryData, after: xdr.LedgerEntryData, ledger: int,
                   rng: random.Random) -> list[xdr.LedgerEntryChange]:
    return [xdr.LedgerEntryChange(xdr.LedgerEntryChangeType.LEDGER_ENTRY_STATE,
                                  state=_entry(before, ledger - rng.randint(1, 50_000), rng.random() < 0.1)),
            xdr.LedgerEntryChange(xdr.LedgerEntryChangeType.LEDGER_ENTRY_UPDATED, updated=_entry(after, ledger))]


def account_entry(account: str, balance: int, rng: random.Random) -> xdr.LedgerEntryData:
    """An account with a home domain, some signers and the v1-v3 extensions busy accounts carry."""
    signers = [xdr.Signer(key=xdr.SignerKey(xdr.SignerKeyType.SIGNER_KEY_TYPE_ED25519,
                                            ed25519=xdr.Uint256(rng.randbytes(32))), weight=xdr.Uint32(1))
               for _ in range(rng.randint(0, 2))]
    v3 = xdr.AccountEntryExtensionV3(ext=xdr.ExtensionPoint(0), seq_ledger=xdr.Uint32(rng.randint(1, 5_000_000)),
                                     seq_time=xdr.TimePoint(xdr.Uint64(rng.randint(1, 2**40))))
    v2 = xdr.AccountEntryExtensionV2(num_sponsored=xdr.Uint32(0), num_sponsoring=xdr.Uint32(0),
                                     signer_sponsoring_i_ds=[xdr.SponsorshipDescriptor(None) for _ in signers],
                                     ext=xdr.AccountEntryExtensionV2Ext(3, v3=v3))
    v1 = xdr.AccountEntryExtensionV1(liabilities=xdr.Liabilities(xdr.Int64(0), xdr.Int64(rng.randint(0, 10**9))),
                                     ext=xdr.AccountEntryExtensionV1Ext(2, v2=v2))
    ext = rng.choice([xdr.AccountEntryExt(0), xdr.AccountEntryExt(1, v1=v1)])
    return xdr.LedgerEntryData(xdr.LedgerEntryType.ACCOUNT, account=xdr.AccountEntry(
        account_id=_account_id(account), balance=xdr.Int64(balance),
        seq_num=xdr.SequenceNumber(xdr.Int64(rng.randint(1, 2**50))), num_sub_entries=xdr.Uint32(rng.randint(0, 9)),
        inflation_dest=_account_id(_account(rng)) if rng.random() < 0.2 else None, flags=xdr.Uint32(0),
        home_domain=xdr.String32(rng.choice([b"", b"lobstr.co", b"example.org"])),
        thresholds=xdr.Thresholds(bytes([1, 0, 0, 0])), signers=signers, ext=ext))


def trustline_entry(account: str, asset: xdr.Asset, balance: int, rng: random.Random) -> xdr.LedgerEntryData:
    line = xdr.TrustLineAsset(asset.type, alpha_num4=asset.alpha_num4, alpha_num12=asset.alpha_num12)
    ext = rng.choice([
        xdr.TrustLineEntryExt(0),
        xdr.TrustLineEntryExt(1, v1=xdr.TrustLineEntryV1(
            liabilities=xdr.Liabilities(xdr.Int64(0), xdr.Int64(0)),
            ext=xdr.TrustLineEntryV1Ext(2, v2=xdr.TrustLineEntryExtensionV2(
                liquidity_pool_use_count=xdr.Int32(1), ext=xdr.TrustLineEntryExtensionV2Ext(0))))),
    ])
    return xdr.LedgerEntryData(xdr.LedgerEntryType.TRUSTLINE, trust_line=xdr.TrustLineEntry(
        account_id=_account_id(account), asset=line, balance=xdr.Int64(balance), limit=xdr.Int64(2**62),
        flags=xdr.Uint32(1), ext=ext))


def _offer(seller: str, selling: xdr.Asset, buying: xdr.Asset, rng: random.Random) -> xdr.OfferEntry:
    return xdr.OfferEntry(seller_id=_account_id(seller), offer_id=xdr.Int64(rng.randint(1, 2**40)), selling=selling,
                          buying=buying, amount=xdr.Int64(rng.randint(1, 10**12)),
                          price=xdr.Price(xdr.Int32(rng.randint(1, 1000)), xdr.Int32(rng.randint(1, 1000))),
                          flags=xdr.Uint32(0), ext=xdr.OfferEntryExt(0))


def _claim_atom(rng: random.Random) -> xdr.ClaimAtom:
    sold, bought = _asset(rng), _asset(rng)
    if rng.random() < 0.5:
        return xdr.ClaimAtom(xdr.ClaimAtomType.CLAIM_ATOM_TYPE_ORDER_BOOK, order_book=xdr.ClaimOfferAtom(
            seller_id=_account_id(_account(rng)), offer_id=xdr.Int64(rng.randint(1, 2**40)), asset_sold=sold,
            amount_sold=xdr.Int64(10), asset_bought=bought, amount_bought=xdr.Int64(11)))
    return xdr.ClaimAtom(xdr.ClaimAtomType.CLAIM_ATOM_TYPE_LIQUIDITY_POOL, liquidity_pool=xdr.ClaimLiquidityAtom(
        liquidity_pool_id=xdr.PoolID(_hash(rng)), asset_sold=sold, amount_sold=xdr.Int64(10), asset_bought=bought,
        amount_bought=xdr.Int64(11)))


def _pool_entry(rng: random.Random) -> xdr.LedgerEntryData:
    params = xdr.LiquidityPoolConstantProductParameters(asset_a=_asset(rng), asset_b=_asset(rng), fee=xdr.Int32(30))
    body = xdr.LiquidityPoolEntryBody(
        xdr.LiquidityPoolType.LIQUIDITY_POOL_CONSTANT_PRODUCT,
        constant_product=xdr.LiquidityPoolEntryConstantProduct(
            params=params, reserve_a=xdr.Int64(10**12), reserve_b=xdr.Int64(10**12), total_pool_shares=xdr.Int64(10**12),
            pool_shares_trust_line_count=xdr.Int64(1000)))
    return xdr.LedgerEntryData(xdr.LedgerEntryType.LIQUIDITY_POOL, liquidity_pool=xdr.LiquidityPoolEntry(
        liquidity_pool_id=xdr.PoolID(_hash(rng)), body=body))


def _scval(rng: random.Random, depth: int = 0) -> xdr.SCVal:
    """A contract value of any common shape: numbers, symbols, strings, bytes, addresses, vecs, maps."""
    choice = rng.randrange(10 if depth < 2 else 7)
    if choice == 0:
        return scval.to_int128(rng.randint(-(2**127), 2**127 - 1))
    if choice == 1:
        return scval.to_uint64(rng.randint(0, 2**64 - 1))
    if choice == 2:
        return scval.to_symbol(rng.choice(["transfer", "Balance", "amount", "x"]))
    if choice == 3:
        return scval.to_address(rng.choice([_account(rng), _contract(rng)]))
    if choice == 4:
        return scval.to_bytes(rng.randbytes(rng.randint(0, 70)))
    if choice == 5:
        return scval.to_string("".join(rng.choice("abcdef") for _ in range(rng.randint(0, 13))))
    if choice == 6:
        return rng.choice([scval.to_bool(True), scval.to_void(), scval.to_uint32(7), scval.to_int32(-7),
                           scval.to_uint256(2**200), scval.to_int256(-(2**200)), scval.to_timepoint(5),
                           scval.to_duration(9), scval.to_uint128(2**100), scval.to_int64(-5)])
    if choice in (7, 8):
        return scval.to_vec([_scval(rng, depth + 1) for _ in range(rng.randint(0, 3))])
    return scval.to_map({scval.to_symbol(f"k{i}"): _scval(rng, depth + 1) for i in range(rng.randint(0, 3))})


def contract_data(contract: str, key: xdr.SCVal, value: xdr.SCVal) -> xdr.LedgerEntryData:
    return xdr.LedgerEntryData(xdr.LedgerEntryType.CONTRACT_DATA, contract_data=xdr.ContractDataEntry(
        ext=xdr.ExtensionPoint(0), contract=scval.to_address(contract).address, key=key,
        durability=xdr.ContractDataDurability.PERSISTENT, val=value))


def _instance(contract: str, rng: random.Random) -> xdr.LedgerEntryData:
    storage = xdr.SCMap([xdr.SCMapEntry(scval.to_symbol(f"k{i}"), _scval(rng)) for i in range(rng.randint(0, 3))])
    value = xdr.SCVal(xdr.SCValType.SCV_CONTRACT_INSTANCE, instance=xdr.SCContractInstance(
        executable=xdr.ContractExecutable(xdr.ContractExecutableType.CONTRACT_EXECUTABLE_WASM, wasm_hash=_hash(rng)),
        storage=storage))
    return contract_data(contract, xdr.SCVal(xdr.SCValType.SCV_LEDGER_KEY_CONTRACT_INSTANCE), value)


def _key_of(data: xdr.LedgerEntryData) -> xdr.LedgerKey:
    d = data.contract_data
    return xdr.LedgerKey(xdr.LedgerEntryType.CONTRACT_DATA,
                         contract_data=xdr.LedgerKeyContractData(d.contract, d.key, d.durability))


def _ttl(key: xdr.LedgerKey, live_until: int) -> xdr.LedgerEntryData:
    return xdr.LedgerEntryData(xdr.LedgerEntryType.TTL, ttl=xdr.TTLEntry(
        key_hash=xdr.Hash(hashlib.sha256(key.to_xdr_bytes()).digest()), live_until_ledger_seq=xdr.Uint32(live_until)))


def contract_event(contract: str, topics: Sequence[xdr.SCVal], data: xdr.SCVal,
                   kind: xdr.ContractEventType = xdr.ContractEventType.CONTRACT) -> xdr.ContractEvent:
    return xdr.ContractEvent(ext=xdr.ExtensionPoint(0), contract_id=scval.to_address(contract).address.contract_id,
                             type=kind, body=xdr.ContractEventBody(0, v0=xdr.ContractEventV0(topics=list(topics),
                                                                                              data=data)))


def _asset_event(name: str, rng: random.Random) -> xdr.ContractEvent:
    """A CAP-67 asset event of a classic operation (emitted by the asset's Stellar Asset Contract)."""
    topics = [scval.to_symbol(name), scval.to_address(_account(rng)), scval.to_address(_account(rng)),
              scval.to_string("USDC:" + _account(rng))]
    return contract_event(_contract(rng), topics, scval.to_int128(rng.randint(1, 10**12)))


def _fee_event(rng: random.Random, stage: int) -> xdr.TransactionEvent:
    event = contract_event(_contract(rng), [scval.to_symbol("fee"), scval.to_address(_account(rng))],
                           scval.to_int128(rng.randint(-1000, 100_000)))
    return xdr.TransactionEvent(stage=xdr.TransactionEventStage(stage), event=event)


class TrafficMaker:
    """Builds whole transactions (envelope, result, meta as XDR bytes) for a ledger."""

    def __init__(self, ledger: int, passphrase: str, meta_version: int = 4) -> None:
        self.ledger = ledger
        self.passphrase = passphrase
        self.meta_version = meta_version

    # -- pieces ------------------------------------------------------------------

    def _fee_changes(self, source: str, rng: random.Random) -> list[xdr.LedgerEntryChange]:
        before = account_entry(source, 10**10, rng)
        return _state_updated(before, before, self.ledger, rng)

    def _envelope(self, source: str, operations: list[xdr.Operation], rng: random.Random,
                  soroban: xdr.SorobanTransactionData | None = None) -> xdr.TransactionEnvelope:
        memo = rng.choice([xdr.Memo(xdr.MemoType.MEMO_NONE), xdr.Memo(xdr.MemoType.MEMO_TEXT, text=b"invoice 42"),
                           xdr.Memo(xdr.MemoType.MEMO_ID, id=xdr.Uint64(rng.randint(0, 2**60))),
                           xdr.Memo(xdr.MemoType.MEMO_HASH, hash=_hash(rng))])
        cond = rng.choice([
            xdr.Preconditions(xdr.PreconditionType.PRECOND_NONE),
            xdr.Preconditions(xdr.PreconditionType.PRECOND_TIME, time_bounds=xdr.TimeBounds(
                xdr.TimePoint(xdr.Uint64(0)), xdr.TimePoint(xdr.Uint64(2**40)))),
        ])
        tx = xdr.Transaction(
            source_account=_muxed(source), fee=xdr.Uint32(rng.randint(100, 10**6)),
            seq_num=xdr.SequenceNumber(xdr.Int64(rng.randint(1, 2**50))), cond=cond, memo=memo,
            operations=operations,
            ext=xdr.TransactionExt(1, soroban_data=soroban) if soroban is not None else xdr.TransactionExt(0))
        signatures = [xdr.DecoratedSignature(hint=xdr.SignatureHint(rng.randbytes(4)),
                                             signature=xdr.Signature(rng.randbytes(64)))
                      for _ in range(rng.randint(1, 2))]
        return xdr.TransactionEnvelope(xdr.EnvelopeType.ENVELOPE_TYPE_TX,
                                       v1=xdr.TransactionV1Envelope(tx=tx, signatures=signatures))

    def _result(self, results: list[xdr.OperationResult], rng: random.Random,
                successful: bool = True) -> xdr.TransactionResult:
        code = xdr.TransactionResultCode.txSUCCESS if successful else xdr.TransactionResultCode.txFAILED
        return xdr.TransactionResult(fee_charged=xdr.Int64(rng.randint(100, 10**6)),
                                     result=xdr.TransactionResultResult(code, results=results),
                                     ext=xdr.TransactionResultExt(0))

    def _meta(self, fee_before: list[xdr.LedgerEntryChange], operations: list[list[xdr.LedgerEntryChange]],
              events: list[list[xdr.ContractEvent]], rng: random.Random, soroban: bool = False,
              diagnostics: list[xdr.DiagnosticEvent] | None = None) -> xdr.TransactionMeta:
        ext = xdr.SorobanTransactionMetaExt(1, v1=xdr.SorobanTransactionMetaExtV1(
            ext=xdr.ExtensionPoint(0), total_non_refundable_resource_fee_charged=xdr.Int64(5000),
            total_refundable_resource_fee_charged=xdr.Int64(100), rent_fee_charged=xdr.Int64(7)))
        if self.meta_version == 3:
            soroban_meta = (xdr.SorobanTransactionMeta(ext=ext, events=[e for op in events for e in op],
                                                       return_value=scval.to_void(),
                                                       diagnostic_events=diagnostics or [])
                            if soroban else None)
            return xdr.TransactionMeta(3, v3=xdr.TransactionMetaV3(
                ext=xdr.ExtensionPoint(0), tx_changes_before=xdr.LedgerEntryChanges(fee_before),
                operations=[xdr.OperationMeta(xdr.LedgerEntryChanges(c)) for c in operations],
                tx_changes_after=xdr.LedgerEntryChanges([]), soroban_meta=soroban_meta))
        return xdr.TransactionMeta(4, v4=xdr.TransactionMetaV4(
            ext=xdr.ExtensionPoint(0), tx_changes_before=xdr.LedgerEntryChanges(fee_before),
            operations=[xdr.OperationMetaV2(ext=xdr.ExtensionPoint(0), changes=xdr.LedgerEntryChanges(c), events=e)
                        for c, e in zip(operations, events, strict=True)],
            tx_changes_after=xdr.LedgerEntryChanges([]),
            soroban_meta=xdr.SorobanTransactionMetaV2(ext=ext, return_value=scval.to_void()) if soroban else None,
            events=[_fee_event(rng, 0), _fee_event(rng, 2)] if rng.random() < 0.8 else [],
            diagnostic_events=diagnostics or []))

    @staticmethod
    def _op_result(kind: xdr.OperationType, **arm: object) -> xdr.OperationResult:
        return xdr.OperationResult(xdr.OperationResultCode.opINNER, tr=xdr.OperationResultTr(kind, **arm))

    # -- shapes ------------------------------------------------------------------

    def payment(self, rng: random.Random) -> tuple[xdr.TransactionEnvelope, xdr.TransactionResult, xdr.TransactionMeta]:
        source, destination, asset = _account(rng), _account(rng), _asset(rng)
        op = xdr.Operation(source_account=None, body=xdr.OperationBody(
            xdr.OperationType.PAYMENT, payment_op=xdr.PaymentOp(destination=_muxed(destination), asset=asset,
                                                                amount=xdr.Int64(rng.randint(1, 10**12)))))
        changes = (_state_updated(trustline_entry(source, asset, 10**9, rng), trustline_entry(source, asset, 10**8, rng),
                                  self.ledger, rng)
                   + _state_updated(trustline_entry(destination, asset, 5, rng),
                                    trustline_entry(destination, asset, 10**8, rng), self.ledger, rng))
        result = self._op_result(xdr.OperationType.PAYMENT, payment_result=xdr.PaymentResult(
            xdr.PaymentResultCode.PAYMENT_SUCCESS))
        return (self._envelope(source, [op], rng), self._result([result], rng),
                self._meta(self._fee_changes(source, rng), [changes], [[_asset_event("transfer", rng)]], rng))

    def path_payment(self, rng: random.Random) -> tuple[xdr.TransactionEnvelope, xdr.TransactionResult,
                                                        xdr.TransactionMeta]:
        source, destination = _account(rng), _account(rng)
        send, dest = _asset(rng), _asset(rng)
        path = [_asset(rng) for _ in range(rng.randint(0, 3))]
        op = xdr.Operation(source_account=_muxed(source) if rng.random() < 0.3 else None, body=xdr.OperationBody(
            xdr.OperationType.PATH_PAYMENT_STRICT_SEND,
            path_payment_strict_send_op=xdr.PathPaymentStrictSendOp(
                send_asset=send, send_amount=xdr.Int64(10**7), destination=_muxed(destination), dest_asset=dest,
                dest_min=xdr.Int64(1), path=path)))
        offers = [_claim_atom(rng) for _ in range(rng.randint(1, 4))]
        result = self._op_result(xdr.OperationType.PATH_PAYMENT_STRICT_SEND,
                                 path_payment_strict_send_result=xdr.PathPaymentStrictSendResult(
                                     xdr.PathPaymentStrictSendResultCode.PATH_PAYMENT_STRICT_SEND_SUCCESS,
                                     success=xdr.PathPaymentStrictSendResultSuccess(
                                         offers=offers, last=xdr.SimplePaymentResult(
                                             destination=_account_id(destination), asset=dest,
                                             amount=xdr.Int64(10**7)))))
        changes = []
        for _ in offers:
            if rng.random() < 0.5:
                offer = xdr.LedgerEntryData(xdr.LedgerEntryType.OFFER, offer=_offer(_account(rng), send, dest, rng))
                changes += _state_updated(offer, offer, self.ledger, rng)
            else:
                pool = _pool_entry(rng)
                changes += _state_updated(pool, pool, self.ledger, rng)
        changes += _state_updated(trustline_entry(source, send, 10**9, rng), trustline_entry(source, send, 1, rng),
                                  self.ledger, rng)
        events = [_asset_event("transfer", rng) for _ in range(len(offers) + 1)]
        return (self._envelope(source, [op], rng), self._result([result], rng),
                self._meta(self._fee_changes(source, rng), [changes], [events], rng))

    def manage_offer(self, rng: random.Random) -> tuple[xdr.TransactionEnvelope, xdr.TransactionResult,
                                                        xdr.TransactionMeta]:
        source, selling, buying = _account(rng), _asset(rng), _asset(rng)
        ops, results, changes, events = [], [], [], []
        for _ in range(rng.randint(1, 3)):  # market makers replace several offers at once
            ops.append(xdr.Operation(source_account=None, body=xdr.OperationBody(
                xdr.OperationType.MANAGE_SELL_OFFER, manage_sell_offer_op=xdr.ManageSellOfferOp(
                    selling=selling, buying=buying, amount=xdr.Int64(10**8), price=xdr.Price(xdr.Int32(3), xdr.Int32(7)),
                    offer_id=xdr.Int64(rng.randint(0, 2**40))))))
            offer = _offer(source, selling, buying, rng)
            results.append(self._op_result(xdr.OperationType.MANAGE_SELL_OFFER,
                                           manage_sell_offer_result=xdr.ManageSellOfferResult(
                                               xdr.ManageSellOfferResultCode.MANAGE_SELL_OFFER_SUCCESS,
                                               success=xdr.ManageOfferSuccessResult(
                                                   offers_claimed=[_claim_atom(rng) for _ in range(rng.randint(0, 2))],
                                                   offer=xdr.ManageOfferSuccessResultOffer(
                                                       xdr.ManageOfferEffect.MANAGE_OFFER_UPDATED, offer=offer)))))
            data = xdr.LedgerEntryData(xdr.LedgerEntryType.OFFER, offer=offer)
            changes.append(_state_updated(data, data, self.ledger, rng))
            events.append([])
        return (self._envelope(source, ops, rng), self._result(results, rng),
                self._meta(self._fee_changes(source, rng), changes, events, rng))

    def create_account(self, rng: random.Random) -> tuple[xdr.TransactionEnvelope, xdr.TransactionResult,
                                                          xdr.TransactionMeta]:
        source, new = _account(rng), _account(rng)
        op = xdr.Operation(source_account=None, body=xdr.OperationBody(
            xdr.OperationType.CREATE_ACCOUNT, create_account_op=xdr.CreateAccountOp(
                destination=_account_id(new), starting_balance=xdr.Int64(10**8))))
        created = xdr.LedgerEntryChange(xdr.LedgerEntryChangeType.LEDGER_ENTRY_CREATED,
                                        created=_entry(account_entry(new, 10**8, rng), self.ledger))
        result = self._op_result(xdr.OperationType.CREATE_ACCOUNT, create_account_result=xdr.CreateAccountResult(
            xdr.CreateAccountResultCode.CREATE_ACCOUNT_SUCCESS))
        source_entry = account_entry(source, 10**10, rng)
        changes = [*_state_updated(source_entry, source_entry, self.ledger, rng), created]
        return (self._envelope(source, [op], rng), self._result([result], rng),
                self._meta(self._fee_changes(source, rng), [changes], [[_asset_event("transfer", rng)]], rng))

    def change_trust(self, rng: random.Random) -> tuple[xdr.TransactionEnvelope, xdr.TransactionResult,
                                                        xdr.TransactionMeta]:
        source, asset = _account(rng), _asset(rng)
        line = xdr.ChangeTrustAsset(asset.type, alpha_num4=asset.alpha_num4, alpha_num12=asset.alpha_num12)
        op = xdr.Operation(source_account=None, body=xdr.OperationBody(
            xdr.OperationType.CHANGE_TRUST, change_trust_op=xdr.ChangeTrustOp(line=line, limit=xdr.Int64(2**62))))
        created = xdr.LedgerEntryChange(xdr.LedgerEntryChangeType.LEDGER_ENTRY_CREATED,
                                        created=_entry(trustline_entry(source, asset, 0, rng), self.ledger))
        result = self._op_result(xdr.OperationType.CHANGE_TRUST, change_trust_result=xdr.ChangeTrustResult(
            xdr.ChangeTrustResultCode.CHANGE_TRUST_SUCCESS))
        return (self._envelope(source, [op], rng), self._result([result], rng),
                self._meta(self._fee_changes(source, rng), [[created]], [[]], rng))

    def fee_bump_payment(self, rng: random.Random) -> tuple[xdr.TransactionEnvelope, xdr.TransactionResult,
                                                            xdr.TransactionMeta]:
        inner_env, inner_result, meta = self.payment(rng)
        fee_source = _account(rng)
        envelope = xdr.TransactionEnvelope(xdr.EnvelopeType.ENVELOPE_TYPE_TX_FEE_BUMP, fee_bump=xdr.FeeBumpTransactionEnvelope(
            tx=xdr.FeeBumpTransaction(fee_source=_muxed(fee_source), fee=xdr.Int64(10**5),
                                      inner_tx=xdr.FeeBumpTransactionInnerTx(xdr.EnvelopeType.ENVELOPE_TYPE_TX,
                                                                             v1=inner_env.v1),
                                      ext=xdr.FeeBumpTransactionExt(0)),
            signatures=[xdr.DecoratedSignature(xdr.SignatureHint(rng.randbytes(4)), xdr.Signature(rng.randbytes(64)))]))
        inner = xdr.InnerTransactionResult(
            fee_charged=xdr.Int64(100), result=xdr.InnerTransactionResultResult(
                xdr.TransactionResultCode.txSUCCESS, results=inner_result.result.results),
            ext=xdr.InnerTransactionResultExt(0))
        result = xdr.TransactionResult(
            fee_charged=xdr.Int64(200), result=xdr.TransactionResultResult(
                xdr.TransactionResultCode.txFEE_BUMP_INNER_SUCCESS,
                inner_result_pair=xdr.InnerTransactionResultPair(transaction_hash=_hash(rng), result=inner)),
            ext=xdr.TransactionResultExt(0))
        return envelope, result, meta

    def invoke(self, rng: random.Random, contract: str | None = None,
               events: list[tuple[list[xdr.SCVal], xdr.SCVal]] | None = None,
               writes: list[tuple[xdr.SCVal, xdr.SCVal]] | None = None,
               ) -> tuple[xdr.TransactionEnvelope, xdr.TransactionResult, xdr.TransactionMeta]:
        """A Soroban invocation: auth entries, a footprint, contract data written (with TTLs),
        contract events and diagnostic events. `contract`, `events` and `writes` make a known one."""
        contract = contract or _contract(rng)
        source = _account(rng)
        args = [_scval(rng) for _ in range(rng.randint(1, 4))]
        invocation = xdr.InvokeContractArgs(contract_address=scval.to_address(contract).address,
                                            function_name=xdr.SCSymbol(rng.choice([b"swap", b"deposit", b"transfer"])),
                                            args=args)
        auth = []
        for _ in range(rng.randint(0, 2)):
            signature = scval.to_vec([scval.to_map({scval.to_symbol("public_key"): scval.to_bytes(rng.randbytes(32)),
                                                    scval.to_symbol("signature"): scval.to_bytes(rng.randbytes(64))})])
            credentials = rng.choice([
                xdr.SorobanCredentials(xdr.SorobanCredentialsType.SOROBAN_CREDENTIALS_SOURCE_ACCOUNT),
                xdr.SorobanCredentials(xdr.SorobanCredentialsType.SOROBAN_CREDENTIALS_ADDRESS,
                                       address=xdr.SorobanAddressCredentials(
                                           address=scval.to_address(_account(rng)).address,
                                           nonce=xdr.Int64(rng.randint(0, 2**60)),
                                           signature_expiration_ledger=xdr.Uint32(self.ledger + 100),
                                           signature=signature)),
            ])
            sub = xdr.SorobanAuthorizedInvocation(
                function=xdr.SorobanAuthorizedFunction(
                    xdr.SorobanAuthorizedFunctionType.SOROBAN_AUTHORIZED_FUNCTION_TYPE_CONTRACT_FN,
                    contract_fn=xdr.InvokeContractArgs(scval.to_address(_contract(rng)).address,
                                                       xdr.SCSymbol(b"transfer"), [_scval(rng)])),
                sub_invocations=[])
            auth.append(xdr.SorobanAuthorizationEntry(credentials=credentials, root_invocation=xdr.SorobanAuthorizedInvocation(
                function=xdr.SorobanAuthorizedFunction(
                    xdr.SorobanAuthorizedFunctionType.SOROBAN_AUTHORIZED_FUNCTION_TYPE_CONTRACT_FN, contract_fn=invocation),
                sub_invocations=[sub] if rng.random() < 0.5 else [])))
        op = xdr.Operation(source_account=None, body=xdr.OperationBody(
            xdr.OperationType.INVOKE_HOST_FUNCTION, invoke_host_function_op=xdr.InvokeHostFunctionOp(
                host_function=xdr.HostFunction(xdr.HostFunctionType.HOST_FUNCTION_TYPE_INVOKE_CONTRACT,
                                               invoke_contract=invocation), auth=auth)))
        writes = writes if writes is not None else [(scval.to_vec([scval.to_symbol("Balance"), _scval(rng, 2)]),
                                                    _scval(rng)) for _ in range(rng.randint(1, 3))]
        changes: list[xdr.LedgerEntryChange] = []
        keys = []
        instance = _instance(contract, rng)
        changes += _state_updated(instance, instance, self.ledger, rng)
        for key, value in writes:
            data = contract_data(contract, key, value)
            keys.append(_key_of(data))
            if rng.random() < 0.7:
                changes += _state_updated(data, data, self.ledger, rng)
            else:
                changes += [xdr.LedgerEntryChange(xdr.LedgerEntryChangeType.LEDGER_ENTRY_CREATED,
                                                  created=_entry(data, self.ledger)),
                            xdr.LedgerEntryChange(xdr.LedgerEntryChangeType.LEDGER_ENTRY_CREATED,
                                                  created=_entry(_ttl(keys[-1], self.ledger + 10**6), self.ledger))]
        soroban = xdr.SorobanTransactionData(
            ext=xdr.SorobanTransactionDataExt(0),
            resources=xdr.SorobanResources(
                footprint=xdr.LedgerFootprint(read_only=[_key_of(instance)], read_write=keys),
                instructions=xdr.Uint32(rng.randint(10**5, 10**8)), disk_read_bytes=xdr.Uint32(1000),
                write_bytes=xdr.Uint32(500)),
            resource_fee=xdr.Int64(rng.randint(10**4, 10**6)))
        emitted = [contract_event(contract, topics, data) for topics, data in events] if events is not None else [
            contract_event(contract, [scval.to_symbol("swap"), _scval(rng, 2)], _scval(rng))
            for _ in range(rng.randint(0, 3))]
        diagnostics = [xdr.DiagnosticEvent(in_successful_contract_call=True, event=contract_event(
            contract, [scval.to_symbol("fn_call"), scval.to_bytes(rng.randbytes(32))], _scval(rng),
            xdr.ContractEventType.DIAGNOSTIC)) for _ in range(rng.randint(0, 2))]
        result = self._op_result(xdr.OperationType.INVOKE_HOST_FUNCTION,
                                 invoke_host_function_result=xdr.InvokeHostFunctionResult(
                                     xdr.InvokeHostFunctionResultCode.INVOKE_HOST_FUNCTION_SUCCESS, success=_hash(rng)))
        return (self._envelope(source, [op], rng, soroban), self._result([result], rng),
                self._meta(self._fee_changes(source, rng), [changes], [emitted], rng, soroban=True,
                           diagnostics=diagnostics))

    def make(self, kind: str, rng: random.Random) -> tuple[bytes, bytes, bytes]:
        """One transaction of a shape in `KINDS`, as (envelope, result, meta) XDR."""
        envelope, result, meta = getattr(self, kind)(rng)
        return envelope.to_xdr_bytes(), result.to_xdr_bytes(), meta.to_xdr_bytes()
