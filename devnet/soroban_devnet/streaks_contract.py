"""The streak contract (CONTRACTS.md §5) on the devnet, with its write path.

It stores what the real contract stores (instance storage `Oracle`,
persistent `Player(Address)` → `PlayerProfile`) plus the classic account
entries `load_account` reads, and serves the three methods a write needs:

- `simulateTransaction` for `sync_streak` and `get_player`: the return value,
  a source-account authorization entry when the oracle is the transaction's
  source (an address-credential entry for the oracle otherwise, as recording
  mode does), real `SorobanTransactionData` and a `minResourceFee`; contract
  error 1 for an unknown player.
- `sendTransaction`: the envelope is parsed with the devnet's passphrase, its
  hash is the envelope's `hash_hex()`, the source account must exist, hold the
  next sequence number and have signed that hash (a signature for another
  network does not verify); one pending transaction per source account, as
  stellar-core queues them (`TRY_AGAIN_LATER` otherwise).
- Pending transactions apply when a ledger closes after their submission:
  lazily, the next time anyone reads ledger entries, events or transactions.
  The sequence number is consumed and the fee charged even if the invocation
  fails; `sync_streak` needs the oracle's authorization (an auth failure
  otherwise) and a registered player (contract error 1 otherwise), sets
  `current_streak` and emits `streak_synced`. The outcome lands in the shared
  `TransactionStore` with real envelope, result and meta XDR.

Only source-account authorization is modelled: that is how the oracle signs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from stellar_sdk import Address, Keypair, StrKey, TransactionEnvelope, scval, xdr
from stellar_sdk.exceptions import BadSignatureError
from stellar_sdk.operation import InvokeHostFunction

from soroban_devnet.entries import contract_data_entry, contract_data_key, enum_key, instance_key
from soroban_devnet.ledger import INVALID_PARAMS, DevnetLedger, Handler, RpcError
from soroban_devnet.transactions import FAILED, SUCCESS, TransactionRecord, TransactionStore

SYNC_STREAK = "sync_streak"
GET_PLAYER = "get_player"
STREAK_SYNCED = "streak_synced"
PLAYER_NOT_REGISTERED = 1
"""Contract error code of `sync_streak`/`get_player` for an unknown player."""

BASE_FEE = 100
RESOURCE_FEE = 61_250
"""What simulation asks for; a transaction must reserve at least this much."""
DEFAULT_BALANCE = 10_000 * 10_000_000
_INSTRUCTIONS = 1_850_000
_DISK_READ_BYTES = 420
_WRITE_BYTES = 120
_LAZY_METHODS = ("getLedgerEntries", "getEvents", "getTransaction")


def player_key(contract_id: str, player: str) -> str:
    return contract_data_key(contract_id, enum_key("Player", scval.to_address(player))).to_xdr()


def player_profile_value(current_streak: int, iq_level: int) -> xdr.SCVal:
    """`PlayerProfile { current_streak: u32, iq_level: u32 }`."""
    return scval.to_struct({"current_streak": scval.to_uint32(current_streak), "iq_level": scval.to_uint32(iq_level)})


def player_entry(contract_id: str, player: str, current_streak: int, iq_level: int) -> tuple[str, str]:
    """(base64 LedgerKey, base64 LedgerEntryData) of a `Player(Address)` entry."""
    key = enum_key("Player", scval.to_address(player))
    data = contract_data_entry(contract_id, key, player_profile_value(current_streak, iq_level))
    return player_key(contract_id, player), data.to_xdr()


def account_key(account_id: str) -> str:
    """The classic `AccountEntry` key `SorobanServer.load_account` asks for."""
    return xdr.LedgerKey(
        type=xdr.LedgerEntryType.ACCOUNT,
        account=xdr.LedgerKeyAccount(account_id=Keypair.from_public_key(account_id).xdr_account_id()),
    ).to_xdr()


def account_entry(account_id: str, balance: int, sequence: int) -> xdr.LedgerEntryData:
    return xdr.LedgerEntryData(
        type=xdr.LedgerEntryType.ACCOUNT,
        account=xdr.AccountEntry(
            account_id=Keypair.from_public_key(account_id).xdr_account_id(),
            balance=xdr.Int64(balance),
            seq_num=xdr.SequenceNumber(xdr.Int64(sequence)),
            num_sub_entries=xdr.Uint32(0),
            inflation_dest=None,
            flags=xdr.Uint32(0),
            home_domain=xdr.String32(b""),
            thresholds=xdr.Thresholds(bytes([1, 0, 0, 0])),
            signers=[],
            ext=xdr.AccountEntryExt(0),
        ),
    )


def _contract_error(code: int) -> xdr.SCVal:
    error = xdr.SCError(xdr.SCErrorType.SCE_CONTRACT, contract_code=xdr.Uint32(code))
    return xdr.SCVal(xdr.SCValType.SCV_ERROR, error=error)


def _host_error(kind: xdr.SCErrorType, code: xdr.SCErrorCode) -> xdr.SCVal:
    return xdr.SCVal(xdr.SCValType.SCV_ERROR, error=xdr.SCError(kind, code=code))


class InvocationError(Exception):
    """A failed contract invocation: the host error value and a readable message."""

    def __init__(self, error: xdr.SCVal, message: str) -> None:
        super().__init__(message)
        self.error = error
        self.message = message

    def __str__(self) -> str:
        err = self.error.error
        assert err is not None
        if err.type == xdr.SCErrorType.SCE_CONTRACT:
            what = f"Error(Contract, #{err.contract_code.uint32})"
        else:
            kind = err.type.name.removeprefix("SCE_").title().replace("_", "")
            what = f"Error({kind}, {err.code.name.removeprefix('SCEC_').title().replace('_', '')})"
        return f"HostError: {what}: {self.message}"


@dataclass(frozen=True)
class _Call:
    function: str
    args: list[xdr.SCVal]
    invocation: xdr.InvokeContractArgs


@dataclass(frozen=True)
class _Pending:
    tx_hash: str
    envelope: TransactionEnvelope
    envelope_xdr: str
    source: str
    submitted_at: int


class StreakContract:
    """The streak contract's state on a `DevnetLedger` and its JSON-RPC write path."""

    def __init__(self, ledger: DevnetLedger, store: TransactionStore, *, contract_id: str, oracle: str) -> None:
        if not StrKey.is_valid_contract(contract_id):
            raise ValueError(f"not a contract id: {contract_id!r}")
        if not StrKey.is_valid_ed25519_public_key(oracle):
            raise ValueError(f"the oracle must be a G... account: {oracle!r}")
        self.ledger = ledger
        self.store = store
        self.contract_id = contract_id
        self.oracle = oracle
        self.wasm_hash = hashlib.sha256(f"streaks-wasm:{contract_id}".encode()).digest()
        self._pending: list[_Pending] = []

    # -- state ---------------------------------------------------------------

    def install(self) -> StreakContract:
        """Write the instance entry (with `Oracle`) and serve the write path on the ledger.

        Install after the ledger's `TransactionStore` exists: reads of entries,
        events and transactions are wrapped so pending writes apply first.
        """
        with self.ledger.lock:
            self._write_instance()
            for name in _LAZY_METHODS:
                self.ledger.register_method(name, self._settling(_current_handler(self.ledger, name)))
            self.ledger.register_method("simulateTransaction", self._rpc_simulate)
            self.ledger.register_method("sendTransaction", self._rpc_send)
        return self

    def _write_instance(self) -> None:
        storage = xdr.SCMap([xdr.SCMapEntry(key=scval.to_symbol("Oracle"), val=scval.to_address(self.oracle))])
        instance = xdr.SCVal(
            xdr.SCValType.SCV_CONTRACT_INSTANCE,
            instance=xdr.SCContractInstance(
                executable=xdr.ContractExecutable(
                    xdr.ContractExecutableType.CONTRACT_EXECUTABLE_WASM, wasm_hash=xdr.Hash(self.wasm_hash)
                ),
                storage=storage,
            ),
        )
        key = xdr.SCVal(xdr.SCValType.SCV_LEDGER_KEY_CONTRACT_INSTANCE)
        data = contract_data_entry(self.contract_id, key, instance)
        self.ledger.put_raw_entry(instance_key(self.contract_id), data.to_xdr())

    def register_player(self, player: str, current_streak: int, iq_level: int = 100) -> None:
        key, data = player_entry(self.contract_id, player, current_streak, iq_level)
        self.ledger.put_raw_entry(key, data)

    def profile(self, player: str) -> dict[str, int] | None:
        """The player's stored `PlayerProfile`, or None if not registered."""
        record = self.ledger.get_entry(player_key(self.contract_id, player))
        if record is None:
            return None
        value = xdr.LedgerEntryData.from_xdr(record[0]).contract_data.val
        return {scval.from_symbol(e.key): scval.from_uint32(e.val) for e in value.map.sc_map}

    def fund_account(self, account_id: str, *, balance: int = DEFAULT_BALANCE, sequence: int | None = None) -> None:
        """Create (or reset) a classic account so it can be a transaction source."""
        seq = (self.ledger.latest_ledger << 32) if sequence is None else sequence
        self.ledger.put_raw_entry(account_key(account_id), account_entry(account_id, balance, seq).to_xdr())

    def account(self, account_id: str) -> xdr.AccountEntry | None:
        record = self.ledger.get_entry(account_key(account_id))
        return None if record is None else xdr.LedgerEntryData.from_xdr(record[0]).account

    @property
    def pending_count(self) -> int:
        with self.ledger.lock:
            return len(self._pending)

    # -- decoding a call -----------------------------------------------------

    def _call(self, envelope: TransactionEnvelope) -> _Call:
        """The single contract call of a Soroban transaction, or InvocationError."""
        operations = envelope.transaction.operations
        if len(operations) != 1 or not isinstance(operations[0], InvokeHostFunction):
            raise RpcError(INVALID_PARAMS, "transaction must hold exactly one InvokeHostFunction operation")
        host_function = operations[0].host_function
        if host_function.type != xdr.HostFunctionType.HOST_FUNCTION_TYPE_INVOKE_CONTRACT:
            raise InvocationError(_host_error(xdr.SCErrorType.SCE_CONTEXT, xdr.SCErrorCode.SCEC_INVALID_ACTION),
                                  "the devnet only invokes the streak contract")
        invocation = host_function.invoke_contract
        assert invocation is not None
        contract = Address.from_xdr_sc_address(invocation.contract_address).address
        if contract != self.contract_id:
            raise InvocationError(_host_error(xdr.SCErrorType.SCE_STORAGE, xdr.SCErrorCode.SCEC_MISSING_VALUE),
                                  f"contract {contract} is not deployed on the devnet")
        function = invocation.function_name.sc_symbol.decode()
        expected = {SYNC_STREAK: (xdr.SCValType.SCV_ADDRESS, xdr.SCValType.SCV_U32),
                    GET_PLAYER: (xdr.SCValType.SCV_ADDRESS,)}
        if function not in expected:
            raise InvocationError(_host_error(xdr.SCErrorType.SCE_WASM_VM, xdr.SCErrorCode.SCEC_MISSING_VALUE),
                                  f"the streak contract has no function {function!r}")
        if tuple(a.type for a in invocation.args) != expected[function]:
            raise InvocationError(_host_error(xdr.SCErrorType.SCE_VALUE, xdr.SCErrorCode.SCEC_UNEXPECTED_TYPE),
                                  f"{function} takes ({', '.join(t.name for t in expected[function])})")
        return _Call(function=function, args=list(invocation.args), invocation=invocation)

    def _registered(self, player: str) -> dict[str, int]:
        profile = self.profile(player)
        if profile is None:
            raise InvocationError(_contract_error(PLAYER_NOT_REGISTERED), f"player {player} is not registered")
        return profile

    def _footprint(self, player: str) -> xdr.LedgerFootprint:
        code = xdr.LedgerKey(
            type=xdr.LedgerEntryType.CONTRACT_CODE,
            contract_code=xdr.LedgerKeyContractCode(hash=xdr.Hash(self.wasm_hash)),
        )
        return xdr.LedgerFootprint(
            read_only=[xdr.LedgerKey.from_xdr(instance_key(self.contract_id)), code],
            read_write=[xdr.LedgerKey.from_xdr(player_key(self.contract_id, player))],
        )

    def _error_event(self, failure: InvocationError) -> xdr.DiagnosticEvent:
        return xdr.DiagnosticEvent(
            in_successful_contract_call=False,
            event=self._event(xdr.ContractEventType.DIAGNOSTIC, [scval.to_symbol("error"), failure.error],
                              scval.to_string(failure.message)),
        )

    def _event(self, kind: xdr.ContractEventType, topics: list[xdr.SCVal], data: xdr.SCVal) -> xdr.ContractEvent:
        return xdr.ContractEvent(
            ext=xdr.ExtensionPoint(0),
            contract_id=Address(self.contract_id).to_xdr_sc_address().contract_id,
            type=kind,
            body=xdr.ContractEventBody(0, v0=xdr.ContractEventV0(topics=topics, data=data)),
        )

    # -- simulateTransaction -------------------------------------------------

    def _rpc_simulate(self, params: Any) -> dict[str, Any]:
        self.settle()
        envelope = self._parse(params)
        latest = self.ledger.latest_ledger
        try:
            call = self._call(envelope)
            player = Address.from_xdr_sc_address(call.args[0].address).address
            profile = self._registered(player)
        except InvocationError as failure:
            return {"error": str(failure), "events": [self._error_event(failure).to_xdr()], "latestLedger": latest}
        if call.function == GET_PLAYER:
            result = player_profile_value(profile["current_streak"], profile["iq_level"])
            auth: list[xdr.SorobanAuthorizationEntry] = []
        else:
            result = scval.to_void()
            auth = [self._recorded_auth(envelope, call)]
        data = xdr.SorobanTransactionData(
            ext=xdr.SorobanTransactionDataExt(0),
            resources=xdr.SorobanResources(
                footprint=self._footprint(player),
                instructions=xdr.Uint32(_INSTRUCTIONS),
                disk_read_bytes=xdr.Uint32(_DISK_READ_BYTES),
                write_bytes=xdr.Uint32(_WRITE_BYTES if call.function == SYNC_STREAK else 0),
            ),
            resource_fee=xdr.Int64(RESOURCE_FEE),
        )
        return {
            "transactionData": data.to_xdr(),
            "minResourceFee": str(RESOURCE_FEE),
            "results": [{"xdr": result.to_xdr(), "auth": [a.to_xdr() for a in auth]}],
            "events": [],
            "latestLedger": latest,
        }

    def _recorded_auth(self, envelope: TransactionEnvelope, call: _Call) -> xdr.SorobanAuthorizationEntry:
        """What recording mode returns for `oracle.require_auth()`."""
        invocation = xdr.SorobanAuthorizedInvocation(
            function=xdr.SorobanAuthorizedFunction(
                xdr.SorobanAuthorizedFunctionType.SOROBAN_AUTHORIZED_FUNCTION_TYPE_CONTRACT_FN,
                contract_fn=call.invocation,
            ),
            sub_invocations=[],
        )
        if _invoker(envelope) == self.oracle:
            credentials = xdr.SorobanCredentials(xdr.SorobanCredentialsType.SOROBAN_CREDENTIALS_SOURCE_ACCOUNT)
        else:
            nonce = int.from_bytes(envelope.hash()[:8], "big", signed=True)
            credentials = xdr.SorobanCredentials(
                xdr.SorobanCredentialsType.SOROBAN_CREDENTIALS_ADDRESS,
                address=xdr.SorobanAddressCredentials(
                    address=Address(self.oracle).to_xdr_sc_address(),
                    nonce=xdr.Int64(nonce),
                    signature_expiration_ledger=xdr.Uint32(self.ledger.latest_ledger + 100),
                    signature=scval.to_void(),
                ),
            )
        return xdr.SorobanAuthorizationEntry(credentials=credentials, root_invocation=invocation)

    # -- sendTransaction -----------------------------------------------------

    def _parse(self, params: Any) -> TransactionEnvelope:
        raw = params.get("transaction") if isinstance(params, dict) else None
        if not isinstance(raw, str):
            raise RpcError(INVALID_PARAMS, "params must be an object with a base64 'transaction'")
        try:
            return TransactionEnvelope.from_xdr(raw, self.ledger.network_passphrase)
        except Exception as exc:  # the XDR parser raises several unrelated types
            raise RpcError(INVALID_PARAMS, f"invalid transaction envelope: {exc}") from exc

    def _send_response(self, status: str, tx_hash: str, code: xdr.TransactionResultCode | None = None) -> dict[str, Any]:
        latest = self.ledger.latest_ledger
        response: dict[str, Any] = {
            "status": status,
            "hash": tx_hash,
            "latestLedger": latest,
            "latestLedgerCloseTime": str(self.ledger.ledger_close_time(latest)),
        }
        if code is not None:
            response["errorResultXdr"] = xdr.TransactionResult(
                fee_charged=xdr.Int64(0),
                result=xdr.TransactionResultResult(code=code),
                ext=xdr.TransactionResultExt(0),
            ).to_xdr()
        return response

    def _rpc_send(self, params: Any) -> dict[str, Any]:
        self.settle()
        envelope = self._parse(params)
        tx_hash = envelope.hash_hex()
        if any(p.tx_hash == tx_hash for p in self._pending):
            return self._send_response("DUPLICATE", tx_hash)
        tx = envelope.transaction
        source = tx.source.account_id
        account = self.account(source)
        codes = xdr.TransactionResultCode
        if account is None:
            return self._send_response("ERROR", tx_hash, codes.txNO_ACCOUNT)
        if any(p.source == source for p in self._pending):
            return self._send_response("TRY_AGAIN_LATER", tx_hash)
        if tx.sequence != account.seq_num.sequence_number.int64 + 1:
            return self._send_response("ERROR", tx_hash, codes.txBAD_SEQ)
        bounds = tx.preconditions.time_bounds if tx.preconditions is not None else None
        closes_at = self.ledger.ledger_close_time(self.ledger.latest_ledger)
        if bounds is not None and bounds.max_time and closes_at > bounds.max_time:
            return self._send_response("ERROR", tx_hash, codes.txTOO_LATE)
        if not _signed_by(envelope, source):
            return self._send_response("ERROR", tx_hash, codes.txBAD_AUTH)
        operations = tx.operations
        if len(operations) != 1 or not isinstance(operations[0], InvokeHostFunction) or tx.soroban_data is None:
            return self._send_response("ERROR", tx_hash, codes.txSOROBAN_INVALID)
        resource_fee = tx.soroban_data.resource_fee.int64
        if resource_fee < RESOURCE_FEE or tx.fee - resource_fee < BASE_FEE:
            return self._send_response("ERROR", tx_hash, codes.txINSUFFICIENT_FEE)
        self._pending.append(_Pending(tx_hash, envelope, envelope.to_xdr(), source, self.ledger.latest_ledger))
        return self._send_response("PENDING", tx_hash)

    # -- applying at ledger close --------------------------------------------

    def _settling(self, handler: Handler) -> Handler:
        def settled_first(params: Any) -> dict[str, Any]:
            self.settle()
            return handler(params)

        return settled_first

    def settle(self) -> int:
        """Apply every pending transaction whose ledger has closed; returns how many."""
        with self.ledger.lock:
            latest = self.ledger.latest_ledger
            due = [p for p in self._pending if p.submitted_at < latest]
            self._pending = [p for p in self._pending if p.submitted_at >= latest]
            for pending in due:
                self._apply(pending, pending.submitted_at + 1)
            return len(due)

    def _apply(self, pending: _Pending, ledger_seq: int) -> None:
        """Apply a transaction as one transaction of the ledger's history, with its real XDR."""
        with self.ledger.transaction(ledger=ledger_seq, tx_hash=pending.tx_hash,
                                     contract_id=self.contract_id) as applied:
            tx = pending.envelope.transaction
            index = self.ledger.transaction_index(ledger_seq, applied)
            assert tx.soroban_data is not None
            fee = min(tx.fee, BASE_FEE + tx.soroban_data.resource_fee.int64)

            account_before = self._ledger_entry(account_key(pending.source))
            account = account_before.data.account
            updated_account = account_entry(pending.source, account.balance.int64 - fee, tx.sequence)
            self.ledger.put_raw_entry(account_key(pending.source), updated_account.to_xdr(), last_modified=ledger_seq)
            fee_changes = xdr.LedgerEntryChanges([
                _change(xdr.LedgerEntryChangeType.LEDGER_ENTRY_STATE, account_before),
                _change(xdr.LedgerEntryChangeType.LEDGER_ENTRY_UPDATED, _entry(ledger_seq, updated_account)),
            ])
            try:
                changes, event = self._execute(pending, ledger_seq, index)
            except InvocationError as failure:
                applied.raw = self._record(pending, ledger_seq, index, fee, fee_changes, failure=failure)
                applied.successful = False
                return
            applied.raw = self._record(pending, ledger_seq, index, fee, fee_changes, changes=changes, event=event)

    def _execute(
        self, pending: _Pending, ledger_seq: int, tx_index: int
    ) -> tuple[xdr.LedgerEntryChanges, xdr.ContractEvent]:
        """Run `sync_streak` against the current state; raises InvocationError."""
        call = self._call(pending.envelope)
        if call.function != SYNC_STREAK:
            raise InvocationError(_host_error(xdr.SCErrorType.SCE_CONTEXT, xdr.SCErrorCode.SCEC_INVALID_ACTION),
                                  f"{call.function} is read-only; simulate it instead")
        player = Address.from_xdr_sc_address(call.args[0].address).address
        streak = scval.from_uint32(call.args[1])
        tx = pending.envelope.transaction
        assert tx.soroban_data is not None
        footprint = tx.soroban_data.resources.footprint
        if player_key(self.contract_id, player) not in {k.to_xdr() for k in footprint.read_write}:
            raise InvocationError(_host_error(xdr.SCErrorType.SCE_STORAGE, xdr.SCErrorCode.SCEC_EXCEEDED_LIMIT),
                                  "the player's entry is not in the transaction's read-write footprint")
        if not self._authorized(pending, call):
            raise InvocationError(_host_error(xdr.SCErrorType.SCE_AUTH, xdr.SCErrorCode.SCEC_INVALID_ACTION),
                                  f"sync_streak requires the authorization of the oracle {self.oracle}")
        profile = self._registered(player)
        before = self._ledger_entry(player_key(self.contract_id, player))
        key, data = player_entry(self.contract_id, player, streak, profile["iq_level"])
        self.ledger.put_raw_entry(key, data, last_modified=ledger_seq)
        event_topics = [scval.to_symbol(STREAK_SYNCED), scval.to_address(player)]
        self.ledger.add_event(contract_id=self.contract_id, topic=event_topics, value=scval.to_uint32(streak),
                              ledger=ledger_seq, tx_hash=pending.tx_hash, tx_index=tx_index)
        changes = xdr.LedgerEntryChanges([
            _change(xdr.LedgerEntryChangeType.LEDGER_ENTRY_STATE, before),
            _change(xdr.LedgerEntryChangeType.LEDGER_ENTRY_UPDATED,
                    _entry(ledger_seq, xdr.LedgerEntryData.from_xdr(data))),
        ])
        return changes, self._event(xdr.ContractEventType.CONTRACT, event_topics, scval.to_uint32(streak))

    def _authorized(self, pending: _Pending, call: _Call) -> bool:
        """The oracle authorized this exact call as the transaction's source account."""
        if _invoker(pending.envelope) != self.oracle:
            return False
        operation = pending.envelope.transaction.operations[0]
        assert isinstance(operation, InvokeHostFunction)
        source_account = xdr.SorobanCredentialsType.SOROBAN_CREDENTIALS_SOURCE_ACCOUNT
        return any(
            entry.credentials.type == source_account
            and entry.root_invocation.function.contract_fn == call.invocation
            for entry in operation.auth
        )

    def _ledger_entry(self, key_b64: str) -> xdr.LedgerEntry:
        record = self.ledger.get_entry(key_b64)
        assert record is not None
        return _entry(record[1], xdr.LedgerEntryData.from_xdr(record[0]))

    def _record(
        self,
        pending: _Pending,
        ledger_seq: int,
        index: int,
        fee: int,
        fee_changes: xdr.LedgerEntryChanges,
        *,
        changes: xdr.LedgerEntryChanges | None = None,
        event: xdr.ContractEvent | None = None,
        failure: InvocationError | None = None,
    ) -> tuple[bytes, bytes, bytes]:
        """Store the outcome for getTransaction; returns (envelope, result, meta) for the ledger's history."""
        succeeded = failure is None
        if succeeded:
            assert event is not None
            preimage = xdr.InvokeHostFunctionSuccessPreImage(return_value=scval.to_void(), events=[event])
            op_result = xdr.InvokeHostFunctionResult(
                xdr.InvokeHostFunctionResultCode.INVOKE_HOST_FUNCTION_SUCCESS,
                success=xdr.Hash(hashlib.sha256(preimage.to_xdr_bytes()).digest()),
            )
        else:
            op_result = xdr.InvokeHostFunctionResult(xdr.InvokeHostFunctionResultCode.INVOKE_HOST_FUNCTION_TRAPPED)
        result = xdr.TransactionResult(
            fee_charged=xdr.Int64(fee),
            result=xdr.TransactionResultResult(
                code=xdr.TransactionResultCode.txSUCCESS if succeeded else xdr.TransactionResultCode.txFAILED,
                results=[
                    xdr.OperationResult(
                        code=xdr.OperationResultCode.opINNER,
                        tr=xdr.OperationResultTr(
                            type=xdr.OperationType.INVOKE_HOST_FUNCTION, invoke_host_function_result=op_result
                        ),
                    )
                ],
            ),
            ext=xdr.TransactionResultExt(0),
        )
        meta = xdr.TransactionMeta(
            v=4,
            v4=xdr.TransactionMetaV4(
                ext=xdr.ExtensionPoint(0),
                tx_changes_before=fee_changes,
                operations=[
                    xdr.OperationMetaV2(
                        ext=xdr.ExtensionPoint(0),
                        changes=changes if changes is not None else xdr.LedgerEntryChanges([]),
                        events=[event] if event is not None else [],
                    )
                ],
                tx_changes_after=xdr.LedgerEntryChanges([]),
                soroban_meta=xdr.SorobanTransactionMetaV2(
                    ext=xdr.SorobanTransactionMetaExt(0), return_value=scval.to_void() if succeeded else None
                ),
                events=[],
                diagnostic_events=[] if failure is None else [self._error_event(failure)],
            ),
        )
        self.store.record(
            TransactionRecord(
                tx_hash=pending.tx_hash,
                status=SUCCESS if succeeded else FAILED,
                ledger=ledger_seq,
                envelope_xdr=pending.envelope_xdr,
                result_xdr=result.to_xdr(),
                result_meta_xdr=meta.to_xdr(),
                application_order=index,
            )
        )
        return pending.envelope.to_xdr_object().to_xdr_bytes(), result.to_xdr_bytes(), meta.to_xdr_bytes()


def _entry(last_modified: int, data: xdr.LedgerEntryData) -> xdr.LedgerEntry:
    return xdr.LedgerEntry(last_modified_ledger_seq=xdr.Uint32(last_modified), data=data, ext=xdr.LedgerEntryExt(0))


def _change(kind: xdr.LedgerEntryChangeType, entry: xdr.LedgerEntry) -> xdr.LedgerEntryChange:
    if kind == xdr.LedgerEntryChangeType.LEDGER_ENTRY_STATE:
        return xdr.LedgerEntryChange(kind, state=entry)
    return xdr.LedgerEntryChange(kind, updated=entry)


def _invoker(envelope: TransactionEnvelope) -> str:
    """The account the contract sees as the caller: the operation's source, else the transaction's."""
    operation = envelope.transaction.operations[0]
    source = operation.source if operation.source is not None else envelope.transaction.source
    return source.account_id


def _signed_by(envelope: TransactionEnvelope, account_id: str) -> bool:
    """Some signature verifies as the account's over the hash for the devnet's passphrase."""
    signer = Keypair.from_public_key(account_id)
    digest = envelope.hash()
    for decorated in envelope.signatures:
        if decorated.signature_hint != signer.signature_hint():
            continue
        try:
            signer.verify(digest, decorated.signature)
        except BadSignatureError:
            continue
        return True
    return False


def _current_handler(ledger: DevnetLedger, name: str) -> Handler:
    """The handler now registered for `name`, so a wrapper can delegate to it."""
    handler = ledger.handler(name)
    if handler is None:
        raise RuntimeError(f"no {name} handler to wrap: install the TransactionStore before the streak contract")
    return handler
