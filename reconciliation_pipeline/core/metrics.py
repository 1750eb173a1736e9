"""Run metrics: the same figures as Dagster metadata and, when configured, on a Pushgateway.

Each domain's run yields one `DomainRunMetrics`: how long the run took until
its findings were persisted, its findings by drift class and severity (and how
many an exemption covers), its errors by operation (failed RPC requests,
undecodable entries, entries left unread at the time limit), the domain's
coverage (share of known entities compared in the last 24 hours, entities never
compared) and the detection latency of the incidents it opened and confirmed. They are pushed with their own `CollectorRegistry`
under the grouping key `{domain}`, so each push replaces that domain's previous
figures and one domain's push never clobbers another's.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import dagster as dg
import pandas as pd
from prometheus_client import CollectorRegistry, Gauge, push_to_gateway

from reconciliation_pipeline.core.drift import DriftClass, Severity
from reconciliation_pipeline.settings import configured, setting_text

if TYPE_CHECKING:
    from reconciliation_pipeline.core.coverage import CoverageSummary
    from reconciliation_pipeline.core.latency import RunLatency

PUSHGATEWAY_VARIABLE = "PROMETHEUS_PUSHGATEWAY_URL"
METRIC_PREFIX = "recon"

_log = logging.getLogger(__name__)


def findings_by_class_and_severity(findings: pd.DataFrame) -> dict[tuple[str, str], int]:
    """Every (drift class, severity) pair with its count, zeros included, so series never vanish."""
    counts = findings.groupby(["drift_class", "severity"]).size() if len(findings) else pd.Series(dtype=int)
    return {(c.value, s.value): int(counts.get((c.value, s.value), 0)) for c in DriftClass for s in Severity}


@dataclass(frozen=True)
class DomainRunMetrics:
    domain: str
    run_id: str
    job_name: str
    duration_s: float
    status: str
    """`succeeded` or `partial` (some entities could not be checked)."""
    findings: Mapping[tuple[str, str], int]
    errors: Mapping[str, int] = field(default_factory=dict)
    """Errors by operation, e.g. `read_pools` (RPC requests that failed after retries)."""
    entities_checked: int = 0
    entities_unchecked: int = 0
    finished_at_unix: float = 0.0
    findings_exempt: int = 0
    coverage: CoverageSummary | None = None
    latency: RunLatency | None = None

    def registry(self) -> CollectorRegistry:
        """A fresh registry holding exactly this run's figures (one per push, never shared)."""
        registry = CollectorRegistry()
        Gauge(f"{METRIC_PREFIX}_run_duration_seconds", "Seconds from the run's start until this domain's "
              "findings were persisted.", registry=registry).set(self.duration_s)
        Gauge(f"{METRIC_PREFIX}_run_finished_timestamp_seconds", "Unix time this domain's run finished.",
              registry=registry).set(self.finished_at_unix)
        Gauge(f"{METRIC_PREFIX}_run_partial", "1 when some entities could not be checked (read errors, "
              "time limit).", registry=registry).set(1 if self.status == "partial" else 0)
        Gauge(f"{METRIC_PREFIX}_entities_checked", "Entities compared on both sides.",
              registry=registry).set(self.entities_checked)
        Gauge(f"{METRIC_PREFIX}_entities_unchecked", "Entities the run could not check.",
              registry=registry).set(self.entities_unchecked)
        findings = Gauge(f"{METRIC_PREFIX}_findings", "Findings of the run by drift class and severity.",
                         ["drift_class", "severity"], registry=registry)
        for (drift_class, severity), count in self.findings.items():
            findings.labels(drift_class=drift_class, severity=severity).set(count)
        errors = Gauge(f"{METRIC_PREFIX}_errors", "Errors of the run by operation.", ["operation"], registry=registry)
        for operation, count in self.errors.items():
            errors.labels(operation=operation).set(count)
        Gauge(f"{METRIC_PREFIX}_findings_exempt", "Findings of the run an exemption rule covers (recorded, not "
              "alerted).", registry=registry).set(self.findings_exempt)
        if self.coverage is not None:
            Gauge(f"{METRIC_PREFIX}_coverage_ratio", "Share of the domain's known entities compared in the last "
                  "24 hours.", registry=registry).set(self.coverage.ratio)
            Gauge(f"{METRIC_PREFIX}_entities_known", "Entities of the domain a run knew of in the last 7 days.",
                  registry=registry).set(self.coverage.known)
            Gauge(f"{METRIC_PREFIX}_entities_never_checked", "Known entities of the domain never compared.",
                  registry=registry).set(self.coverage.never_checked)
        if self.latency is not None:
            latency = Gauge(f"{METRIC_PREFIX}_detection_latency_seconds", "Seconds from a chain change (its ledger's "
                            "close time) to the incident being opened or confirmed, over this run's incidents.",
                            ["stage", "statistic"], registry=registry)
            for stage, statistic, value in (("open", "median", self.latency.open_median_s),
                                            ("open", "max", self.latency.open_max_s),
                                            ("confirm", "median", self.latency.confirm_median_s),
                                            ("confirm", "max", self.latency.confirm_max_s)):
                if value is not None:
                    latency.labels(stage=stage, statistic=statistic).set(value)
        return registry

    def as_metadata(self) -> dict[str, Any]:
        """The pushed figures as Dagster metadata (numbers the UI plots across runs)."""
        by_severity = {s.value: 0 for s in Severity}
        for (_, severity), count in self.findings.items():
            by_severity[severity] += count
        metadata: dict[str, Any] = {
            "run_duration_seconds": round(self.duration_s, 3),
            **{f"findings_by_severity/{s}": n for s, n in by_severity.items()},
            **{f"errors/{op}": n for op, n in self.errors.items()},
            "findings_exempt": self.findings_exempt,
            **(self.coverage.as_metadata() if self.coverage is not None else {}),
            **(self.latency.as_metadata() if self.latency is not None else {}),
        }
        metadata["metrics"] = dg.MetadataValue.json(
            {
                "run_duration_seconds": round(self.duration_s, 3),
                "status": self.status,
                "entities_checked": self.entities_checked,
                "entities_unchecked": self.entities_unchecked,
                "findings": {f"{c}/{s}": n for (c, s), n in self.findings.items() if n},
                "errors": dict(self.errors),
            }
        )
        return metadata


def redact_url(url: str) -> str:
    """Scheme and host only: URLs may carry tokens in their path or query."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}/…" if parts.scheme else "(unparseable URL)"


def is_http_url(url: str) -> bool:
    """An absolute http(s) URL with a host (a Pushgateway, a webhook)."""
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


class PushgatewayResource(dg.ConfigurableResource):
    """Where run metrics go; an empty URL means Dagster metadata only."""

    pushgateway_url: str | None = None
    """None: PROMETHEUS_PUSHGATEWAY_URL when the run starts, else empty (metadata only)."""
    job_name: str = "reconciliation"
    timeout_ms: int = 5000

    def url(self) -> str:
        return configured(self.pushgateway_url, PUSHGATEWAY_VARIABLE, setting_text)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if self.url() and not is_http_url(self.url()):
            raise dg.DagsterInvariantViolationError(
                f"{PUSHGATEWAY_VARIABLE} must be an http(s) URL or empty, got a value that is not"
            )
        if self.timeout_ms <= 0:
            raise dg.DagsterInvariantViolationError(f"the pushgateway timeout must be positive, got {self.timeout_ms}")

    @property
    def enabled(self) -> bool:
        return bool(self.url())

    def push(self, metrics: DomainRunMetrics, log: logging.Logger | logging.LoggerAdapter = _log) -> bool:
        """Push one domain's figures; a failing gateway is logged, never fails the run."""
        if not self.enabled:
            return False
        try:
            push_to_gateway(
                self.url(),
                job=self.job_name,
                registry=metrics.registry(),
                grouping_key={"domain": metrics.domain},
                timeout=self.timeout_ms / 1000,
            )
        except Exception as error:  # any transport failure; the run's results are already persisted
            log.warning(f"metrics push to {redact_url(self.pushgateway_url)} failed: {type(error).__name__}")
            return False
        return True
