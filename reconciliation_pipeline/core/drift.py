"""The vocabulary of findings: drift classes and severities."""

from __future__ import annotations

from enum import StrEnum


class DriftClass(StrEnum):
    MISSING_ON_CHAIN = "MISSING_ON_CHAIN"
    MISSING_IN_DB = "MISSING_IN_DB"
    VALUE_MISMATCH = "VALUE_MISMATCH"
    STATUS_MISMATCH = "STATUS_MISMATCH"
    UNRESOLVED_PROVISIONAL_ID = "UNRESOLVED_PROVISIONAL_ID"
    ORPHANED_PENDING_TX = "ORPHANED_PENDING_TX"
    MISSED_EVENT = "MISSED_EVENT"
    INVARIANT_VIOLATION = "INVARIANT_VIOLATION"
    INVALID_ADDRESS = "INVALID_ADDRESS"
    CHAIN_READ_ERROR = "CHAIN_READ_ERROR"
    TTL_EXPIRING = "TTL_EXPIRING"
    ARCHIVED = "ARCHIVED"
    PROJECTION_DRIFT = "PROJECTION_DRIFT"


class Severity(StrEnum):
    INFO = "INFO"
    WARN = "WARN"
    CRITICAL = "CRITICAL"


class FindingStatus(StrEnum):
    """Whether a finding is drift, or may be a write caught between the two snapshots."""

    DRIFT = "drift"
    IN_FLIGHT = "in_flight"
    """The chain entry changed after the database snapshot, or the row after the chain read: re-checked
    by the next run, and no incident unless it persists."""


WHOLE_ENTITY = "*"
"""The `field` of a finding about a whole entity (missing, unreadable)."""
