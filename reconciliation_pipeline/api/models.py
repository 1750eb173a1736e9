"""What the API answers: the same structured fields as the recon tables.

Amounts (delta, amount at stake) are strings of exact integers in base units:
a JSON number would round anything past 2**53.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field


class Asset(BaseModel):
    code: str | None = Field(None, description="Classic asset code (USDC), when known.")
    issuer: str | None = Field(None, description="Classic asset issuer (G...), when known.")
    contract_id: str | None = Field(None, description="The asset's contract (Stellar Asset Contract or token, C...).")
    decimals: int | None = Field(None, description="Decimals of the asset (7 for every Stellar Asset Contract).")


class Discrepancy(BaseModel):
    discrepancy_id: int
    run_id: str
    domain: str
    entity_type: str
    entity_id: str = Field(description="e.g. stream_2")
    field: str = Field(description="The field that differs; * for the whole entity.")
    drift_class: str
    severity: str
    status: str = Field(description="drift, or in_flight: one side was written between the two snapshots; "
                                    "the next run checks it again, and it opens no incident unless it persists.")
    db_value: str | None = Field(description="The database's value, canonical text.")
    chain_value: str | None = Field(description="The chain's value, canonical text.")
    delta: str | None = Field(description="Chain minus database, an exact integer, for compared integers.")
    ledger_sequence: int | None
    db_snapshot_at: datetime | None
    partition_key: str | None
    detected_at: datetime
    details: dict[str, Any]
    asset: Asset | None = Field(description="Money findings only: the asset of the amount.")
    amount_at_stake: str | None = Field(description="Money findings only: |delta| in base units, exact.")
    exempt_rule_id: int | None = Field(description="The exemption rule covering the finding, if any.")
    incident_id: int | None
    incident_state: str | None = Field(description="open, confirmed or resolved.")


class DiscrepancyPage(BaseModel):
    discrepancies: list[Discrepancy]
    next_after: int | None = Field(description="Pass as `after` for the next page; null on the last page.")


class Incident(BaseModel):
    incident_id: int
    domain: str
    entity_type: str
    entity_id: str
    field: str
    drift_class: str
    severity: str
    state: str
    first_seen_at: datetime
    last_seen_at: datetime
    confirmed_at: datetime | None
    resolved_at: datetime | None
    first_run_id: str
    last_run_id: str
    consecutive_runs: int
    occurrences: int
    last_db_value: str | None
    last_chain_value: str | None
    last_delta: str | None
    acknowledged_until: datetime | None
    acknowledged_by: str | None
    exempt_rule_id: int | None
    resolution: str | None
    resolved_by: str | None
    resolution_note: str | None
    asset: Asset | None
    amount_at_stake: str | None
    chain_changed_at: datetime | None = Field(description="Close time of the ledger the chain entry last changed at.")


class IncidentEvent(BaseModel):
    event: str
    occurrence: int
    actor: str
    reason: str | None
    run_id: str | None
    rule_id: int | None
    until: datetime | None
    at: datetime


class IncidentDetail(Incident):
    events: list[IncidentEvent]


class IncidentPage(BaseModel):
    incidents: list[Incident]
    next_after: int | None


class LaunchRequest(BaseModel):
    domain: str = Field(description="The domain to reconcile: streams, lending, markets, balances, streaks.")
    dry_run: bool = Field(True, description="True: repairs planned, nothing written to application tables or the "
                          "chain. False: planned repairs are applied (compare-and-swap, audited).")
    partition: str | None = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$",
                                  description="UTC day (YYYY-MM-DD) for daily-partitioned domains; default: "
                                  "yesterday. Refused for unpartitioned domains.")


class Launched(BaseModel):
    run_id: str
    domain: str
    job_name: str
    dry_run: bool
    partition: str | None
    status_url: str


class RunDomain(BaseModel):
    domain: str
    job_name: str | None
    partition_key: str | None
    status: str = Field(description="running, succeeded, partial, recomputed or failed (recon.runs).")
    dry_run: bool
    started_at: datetime
    finished_at: datetime | None
    ledger_sequence: int | None
    db_snapshot_at: datetime | None
    entities_checked: int
    entities_unchecked: int
    finding_counts: dict[str, int]
    in_flight: int = Field(description="Findings in flight (not in finding_counts).")
    repairs_planned: int
    repairs_applied: int
    repairs_skipped: int
    repairs_failed: int


class Run(BaseModel):
    run_id: str
    status: str = Field(description="The Dagster run's status: QUEUED, STARTING, STARTED, SUCCESS, FAILURE, ...")
    domains: list[RunDomain] = Field(description="What the run recorded per domain, once its findings persisted.")


class RunDiscrepancies(BaseModel):
    run_id: str
    status: str
    discrepancies: list[Discrepancy]
