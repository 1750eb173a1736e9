"""The API for the apps (FastAPI): discrepancies, incidents, launching reconciliations, runs.

Every endpoint but `/healthz` needs a bearer token: a read token lists and
reads, a launch token also launches. No token: 401; a token we do not know:
401; a known token without the scope: 403. The OpenAPI document is served at
`/openapi.json` (and browsable at `/docs`).
"""

# No `from __future__ import annotations`: FastAPI reads these signatures at run time, and the
# dependencies they name (the bearer scheme, the query aliases) are local to create_app.
import logging
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine

from reconciliation_pipeline.api import launch
from reconciliation_pipeline.api.auth import Scope, Tokens
from reconciliation_pipeline.api.models import (
    Asset,
    Discrepancy,
    DiscrepancyPage,
    Incident,
    IncidentDetail,
    IncidentEvent,
    IncidentPage,
    Launched,
    LaunchRequest,
    Run,
    RunDiscrepancies,
    RunDomain,
)
from reconciliation_pipeline.core.drift import Severity
from reconciliation_pipeline.core.sql import SqlFolder
from reconciliation_pipeline.resources import sqlalchemy_url

API_SQL = SqlFolder("reconciliation_pipeline", "sql/api")
STATES = ("open", "confirmed", "resolved")
MAX_PAGE = 1000
_log = logging.getLogger("reconciliation_pipeline.api")


@dataclass(frozen=True)
class ApiSettings:
    database_url: str
    dagster_webserver_url: str
    tokens: Tokens


def _asset(row: Mapping[str, Any]) -> Asset | None:
    if row["asset_contract_id"] is None and row["asset_code"] is None:
        return None
    return Asset(code=row["asset_code"], issuer=row["asset_issuer"], contract_id=row["asset_contract_id"],
                 decimals=row["asset_decimals"])


def _discrepancy(row: Mapping[str, Any]) -> Discrepancy:
    return Discrepancy(**{k: v for k, v in row.items() if not k.startswith("asset_")}, asset=_asset(row))


def _incident(row: Mapping[str, Any]) -> dict[str, Any]:
    return {**{k: v for k, v in row.items() if not k.startswith("asset_")}, "asset": _asset(row)}


def create_app(settings: ApiSettings, runs: launch.DagsterRuns | None = None) -> FastAPI:
    """The app; `runs` talks to the Dagster webserver (built from the settings unless given)."""
    engine: Engine = sa.create_engine(sqlalchemy_url(settings.database_url), pool_pre_ping=True)
    dagster = runs or launch.DagsterRuns(settings.dagster_webserver_url)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        engine.dispose()

    app = FastAPI(
        title="Reconciliation API",
        version="1",
        description="Chain <-> database reconciliation for the apps: discrepancies and incidents with filters, "
        "launching a domain's reconciliation (dry run by default), a run's status and discrepancies. Bearer "
        "tokens: read scope to list and read, launch scope to launch as well.",
        lifespan=lifespan,
    )
    bearer = HTTPBearer(auto_error=False, description="A read or launch token (RECON_API_*_TOKENS).")

    def scoped(scope: Scope) -> Any:
        def check(credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
            challenge = {"WWW-Authenticate": "Bearer"}
            if credentials is None or credentials.scheme.lower() != "bearer":
                raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing bearer token", headers=challenge)
            scopes = settings.tokens.scopes_of(credentials.credentials)
            if scopes is None:
                raise HTTPException(status.HTTP_401_UNAUTHORIZED, "invalid token",
                                    headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
            if scope not in scopes:
                raise HTTPException(status.HTTP_403_FORBIDDEN, f"this token lacks the {scope} scope",
                                    headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{scope}"'})

        return Depends(check)

    read = scoped(Scope.READ)

    def query(name: str, params: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        with engine.connect() as connection:
            return list(connection.execute(API_SQL.query(name), dict(params)).mappings().all())

    Severities = Annotated[Severity | None, Query(description="INFO, WARN or CRITICAL")]
    States = Annotated[str | None, Query(pattern="^(open|confirmed|resolved)$", description="Incident state.")]
    Since = Annotated[datetime | None, Query(description="Only rows seen (found) at or after this ISO 8601 time.")]
    Limit = Annotated[int, Query(ge=1, le=MAX_PAGE)]

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        with engine.connect() as connection:
            connection.execute(sa.text("SELECT 1"))
        return {"status": "ok"}

    @app.get("/v1/discrepancies", response_model=DiscrepancyPage, dependencies=[read],
             summary="Findings, newest first, with filters")
    def discrepancies(domain: str | None = None, state: States = None, severity: Severities = None,
                      since: Since = None, run_id: str | None = None, entity_id: str | None = None,
                      exempt: bool | None = None, limit: Limit = 100, after: int | None = None) -> DiscrepancyPage:
        rows = query("discrepancies.sql", {
            "domain": domain, "state": state, "severity": severity.value if severity else None, "since": since,
            "run_id": run_id, "entity_id": entity_id, "exempt": exempt, "limit": limit, "after": after})
        found = [_discrepancy(r) for r in rows]
        return DiscrepancyPage(discrepancies=found,
                               next_after=found[-1].discrepancy_id if len(found) == limit else None)

    @app.get("/v1/incidents", response_model=IncidentPage, dependencies=[read], summary="Incidents, with filters")
    def incidents(domain: str | None = None, state: States = None, severity: Severities = None, since: Since = None,
                  limit: Limit = 100, after: int | None = None) -> IncidentPage:
        rows = query("incidents.sql", {"domain": domain, "state": state,
                                       "severity": severity.value if severity else None, "since": since,
                                       "limit": limit, "after": after})
        found = [Incident(**_incident(r)) for r in rows]
        return IncidentPage(incidents=found, next_after=found[-1].incident_id if len(found) == limit else None)

    @app.get("/v1/incidents/{incident_id}", response_model=IncidentDetail, dependencies=[read],
             summary="One incident and its history")
    def incident(incident_id: int) -> IncidentDetail:
        rows = query("incident.sql", {"incident_id": incident_id})
        if not rows:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no incident {incident_id}")
        events = [IncidentEvent(**e) for e in query("incident_events.sql", {"incident_id": incident_id})]
        return IncidentDetail(**_incident(rows[0]), events=events)

    @app.post("/v1/reconciliations", response_model=Launched, status_code=status.HTTP_202_ACCEPTED,
              dependencies=[scoped(Scope.LAUNCH)], summary="Launch a domain's reconciliation as a Dagster run")
    def reconcile(body: LaunchRequest, request: Request) -> Launched:
        plans = launch.launch_plans()
        plan = plans.get(body.domain)
        if plan is None:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                                f"unknown domain {body.domain!r}; known: {', '.join(plans)}")
        if body.partition is not None and not plan.partitioned:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT,
                                f"{body.domain} is not partitioned: give no partition")
        partition = (body.partition or launch.default_partition()) if plan.partitioned else None
        try:
            run_id = dagster.submit(plan, dry_run=body.dry_run, partition=partition)
        except launch.LaunchError as error:
            raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(error)) from None
        _log.info(f"launched run {run_id} of {plan.job_name} for {body.domain} (dry_run={body.dry_run}, "
                  f"partition={partition})")
        return Launched(run_id=run_id, domain=body.domain, job_name=plan.job_name, dry_run=body.dry_run,
                        partition=partition, status_url=str(request.url_for("run", run_id=run_id)))

    def run_status(run_id: str) -> str:
        try:
            return dagster.status(run_id)
        except launch.RunNotFound:
            raise HTTPException(status.HTTP_404_NOT_FOUND, f"no run {run_id}") from None
        except launch.LaunchError as error:
            raise HTTPException(status.HTTP_502_BAD_GATEWAY, str(error)) from None

    @app.get("/v1/runs/{run_id}", response_model=Run, dependencies=[read], summary="A run's status")
    def run(run_id: str) -> Run:
        return Run(run_id=run_id, status=run_status(run_id),
                   domains=[RunDomain(**r) for r in query("run_domains.sql", {"run_id": run_id})])

    @app.get("/v1/runs/{run_id}/discrepancies", response_model=RunDiscrepancies, dependencies=[read],
             summary="A run's status and every finding it persisted")
    def run_discrepancies(run_id: str, limit: Limit = MAX_PAGE) -> RunDiscrepancies:
        state = run_status(run_id)
        rows = query("discrepancies.sql", {"domain": None, "state": None, "severity": None, "since": None,
                                           "run_id": run_id, "entity_id": None, "exempt": None, "limit": limit,
                                           "after": None})
        return RunDiscrepancies(run_id=run_id, status=state, discrepancies=[_discrepancy(r) for r in rows])

    return app
