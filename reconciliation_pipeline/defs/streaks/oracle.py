"""The streak oracle: the only thing in the pipeline that can sign a transaction.

It is its own resource class, separate from the read-only `SorobanRpcResource`,
and only the streak sync asset takes it, so no reconciliation asset can write.
The secret arrives through `ORACLE_SECRET_KEY` (read through a Dagster `EnvVar`
when a run starts, only when syncing is enabled); it is turned into a keypair once, held privately, and never
logged, put in metadata, or echoed in an error.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum

import dagster as dg
from pydantic import Field, PrivateAttr
from stellar_sdk import Keypair, SorobanServer, TransactionBuilder, TransactionEnvelope, scval, xdr
from stellar_sdk.client.requests_client import RequestsClient
from stellar_sdk.soroban_rpc import GetTransactionStatus, SendTransactionStatus

from reconciliation_pipeline.settings import configured, setting_text

SYNC_STREAK = "sync_streak"
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off", ""})


def parse_flag(value: str, variable: str) -> bool:
    """An on/off environment value; anything unrecognised is a configuration error naming the variable."""
    normalized = value.strip().lower()
    if normalized in _TRUE:
        return True
    if normalized in _FALSE:
        return False
    raise dg.DagsterInvariantViolationError(f"{variable} must be true or false, got {value!r}")


def oracle_keypair(secret: str) -> Keypair:
    """The oracle's keypair; a bad secret is an error that does not repeat it."""
    if not secret:
        raise dg.DagsterInvariantViolationError(
            "STREAK_SYNC_ENABLED is true but ORACLE_SECRET_KEY is empty: set it to the oracle's secret seed (S...)"
        )
    try:
        return Keypair.from_secret(secret)
    except Exception:
        raise dg.DagsterInvariantViolationError(
            "ORACLE_SECRET_KEY is not a valid Stellar secret seed (S..., 56 characters)"
        ) from None


class Outcome(StrEnum):
    SUCCESS = "success"
    FAILED = "failed"
    """Included in a ledger but failed, or rejected at submission (`ERROR`)."""
    BAD_SEQUENCE = "bad_sequence"
    """Rejected with txBAD_SEQ: the oracle's sequence moved; rebuild with a fresh one."""
    NOT_SENT = "not_sent"
    """Still `TRY_AGAIN_LATER` after every retry."""
    NOT_FINAL = "not_final"
    """Accepted, but no final status before the poll deadline."""


@dataclass(frozen=True)
class Submission:
    outcome: Outcome
    error: str | None = None
    ledger: int | None = None


def _result_code(result_xdr: str | None) -> str:
    if not result_xdr:
        return "no result"
    result = xdr.TransactionResult.from_xdr(result_xdr)
    names = [result.result.code.name]
    for op in result.result.results or []:
        inner = op.tr.invoke_host_function_result if op.tr is not None else None
        names.append(inner.code.name if inner is not None else op.code.name)
    return " / ".join(names)


def _diagnostics(meta_xdr: str | None) -> list[str]:
    """Readable error events of a failed transaction's meta (v4 carries them)."""
    if not meta_xdr:
        return []
    meta = xdr.TransactionMeta.from_xdr(meta_xdr)
    events = meta.v4.diagnostic_events if meta.v == 4 and meta.v4 is not None else []
    messages = []
    for event in events:
        body = event.event.body.v0
        for topic in body.topics:
            if topic.type == xdr.SCValType.SCV_ERROR:
                error = topic.error
                detail = f"#{error.contract_code.uint32}" if error.contract_code is not None else error.code.name
                messages.append(f"{error.type.name} {detail}")
        if body.data.type == xdr.SCValType.SCV_STRING:
            messages.append(scval.from_string(body.data).decode())
    return messages


class OracleSession:
    """Builds, prepares, signs, sends and polls `sync_streak` transactions for one run."""

    def __init__(self, resource: StreakOracleResource, keypair: Keypair) -> None:
        self._resource = resource
        self._keypair = keypair
        client = RequestsClient(request_timeout=resource.request_timeout_s, post_timeout=resource.request_timeout_s)
        self.server = SorobanServer(resource.rpc_url, client=client)

    @property
    def address(self) -> str:
        return self._keypair.public_key

    def close(self) -> None:
        self.server.close()

    def build_signed(self, contract_id: str, player: str, streak: int) -> TransactionEnvelope:
        """`sync_streak(player, streak)` with the oracle's current sequence, simulated, prepared and signed.

        Raises `AccountNotFoundException` (no oracle account) or
        `PrepareTransactionException` (the simulation failed, e.g. contract error 1).
        """
        account = self.server.load_account(self.address)
        transaction = (
            TransactionBuilder(account, self._resource.passphrase(), self._resource.base_fee)
            .append_invoke_contract_function_op(contract_id, SYNC_STREAK,
                                                [scval.to_address(player), scval.to_uint32(streak)])
            .set_timeout(self._resource.tx_timeout_s)
            .build()
        )
        prepared = self.server.prepare_transaction(transaction)
        prepared.sign(self._keypair)
        return prepared

    def submit(self, envelope: TransactionEnvelope) -> Submission:
        """Send (resubmitting the same envelope on TRY_AGAIN_LATER) and poll to a final status."""
        tx_hash = envelope.hash_hex()
        for attempt in range(1, self._resource.try_again_attempts + 1):
            response = self.server.send_transaction(envelope)
            if response.status in (SendTransactionStatus.PENDING, SendTransactionStatus.DUPLICATE):
                return self._poll(tx_hash)
            if response.status == SendTransactionStatus.ERROR:
                code = _result_code(response.error_result_xdr)
                if code == xdr.TransactionResultCode.txBAD_SEQ.name:
                    return Submission(Outcome.BAD_SEQUENCE,
                                      f"rejected at submission: {code} (the oracle's sequence number moved)")
                return Submission(Outcome.FAILED, f"rejected at submission: {code}")
            if attempt < self._resource.try_again_attempts:
                time.sleep(self._resource.try_again_backoff_ms / 1000 * 2 ** (attempt - 1))
        return Submission(Outcome.NOT_SENT,
                          f"the network answered TRY_AGAIN_LATER {self._resource.try_again_attempts} times; not sent")

    def _poll(self, tx_hash: str) -> Submission:
        deadline = time.monotonic() + self._resource.poll_timeout_s
        while True:
            response = self.server.get_transaction(tx_hash)
            if response.status == GetTransactionStatus.SUCCESS:
                return Submission(Outcome.SUCCESS, ledger=response.ledger)
            if response.status == GetTransactionStatus.FAILED:
                reasons = [_result_code(response.result_xdr), *_diagnostics(response.result_meta_xdr)]
                return Submission(Outcome.FAILED, "transaction failed: " + "; ".join(reasons), response.ledger)
            if time.monotonic() >= deadline:
                return Submission(Outcome.NOT_FINAL,
                                  f"no final status {self._resource.poll_timeout_s} s after sending; look the hash up later")
            time.sleep(self._resource.poll_interval_ms / 1000)


class StreakOracleResource(dg.ConfigurableResource):
    """Signs and sends `sync_streak` as the streak contract's oracle, when syncing is enabled.

    With `sync_enabled` false (the default) it holds no key and `session()`
    refuses; the secret may then be empty.
    """

    rpc_url: str
    network_passphrase: str | None = Field(default=None, description="None: STELLAR_NETWORK_PASSPHRASE.")
    sync_enabled: str | None = Field(default=None, description="None: STREAK_SYNC_ENABLED (true to send, false, the "
                                     "default, to plan only).")
    oracle_secret_key: str | None = Field(default=None, repr=False,
                                          description="None: ORACLE_SECRET_KEY, the oracle's secret seed.")
    base_fee: int = 100
    tx_timeout_s: int = 30
    request_timeout_s: int = 30
    poll_interval_ms: int = 1000
    poll_timeout_s: int = 60
    try_again_attempts: int = 5
    try_again_backoff_ms: int = 2000
    _keypair: Keypair | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if not self.rpc_url.startswith(("http://", "https://")):
            raise dg.DagsterInvariantViolationError(f"SOROBAN_RPC_URL must be an http(s) URL, got {self.rpc_url!r}")
        if self.enabled:
            self._keypair = oracle_keypair(configured(self.oracle_secret_key, "ORACLE_SECRET_KEY", setting_text))

    @property
    def enabled(self) -> bool:
        return parse_flag(configured(self.sync_enabled, "STREAK_SYNC_ENABLED", setting_text), "STREAK_SYNC_ENABLED")

    def passphrase(self) -> str:
        return configured(self.network_passphrase, "STELLAR_NETWORK_PASSPHRASE", setting_text)

    @property
    def oracle_address(self) -> str | None:
        """The public address the configured key signs as (never the secret)."""
        return self._keypair.public_key if self._keypair is not None else None

    @contextmanager
    def session(self) -> Iterator[OracleSession]:
        if not self.enabled or self._keypair is None:
            raise dg.DagsterInvariantViolationError("streak sync is disabled (STREAK_SYNC_ENABLED=false): nothing may be sent")
        session = OracleSession(self, self._keypair)
        try:
            yield session
        finally:
            session.close()
