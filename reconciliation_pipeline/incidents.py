"""The on-call workflow: `recon incidents list | show | ack | exempt | resolve | rules`.

Every action is audited in `recon.incident_events` (who, when, why), beside
what the pipeline itself did to the incident (opened, reopened, confirmed,
resolved):

- **acknowledge** an incident until a time: it alerts nowhere until then and
  is still tracked (its runs, confirmation and resolution go on); when the
  acknowledgement runs out and the drift is still there, it alerts.
- **exempt** a known case with a rule (domain, entity pattern, field, drift
  class, optional delta direction and bound, owner, reason, expiry), from an
  incident or written out: matching findings are still recorded, marked
  exempt, and neither alert nor count as open drift until the rule expires.
- **resolve** an incident by hand with a note. If the drift comes back, the
  next run that sees it reopens it (a new occurrence, alerted again).

Bad input is a typed error with a clear message: an unknown incident or rule,
an expiry in the past, an expired or revoked rule, resolving what is resolved.
"""

from __future__ import annotations

import argparse
import getpass
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from tabulate import tabulate

from reconciliation_pipeline.core import sql
from reconciliation_pipeline.core.drift import DriftClass, Severity
from reconciliation_pipeline.core.json_text import to_json
from reconciliation_pipeline.core.spec import identifier

STATES = ("open", "confirmed", "resolved")
DIRECTIONS = ("chain_above_db", "chain_below_db")
_DURATION = re.compile(r"^(\d+)\s*([mhdw])$")
_DURATION_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


class IncidentError(Exception):
    """A workflow action that cannot be done, with a message for the on-call engineer."""


class UnknownIncident(IncidentError):
    pass


class UnknownRule(IncidentError):
    pass


class ExpiredRule(IncidentError):
    """An expiry in the past, or a rule that has expired or was revoked."""


class InvalidAction(IncidentError):
    pass


def parse_until(text: str, now: datetime) -> datetime:
    """`30m`, `4h`, `2d`, `1w` from now, or an ISO 8601 time (UTC unless it says otherwise)."""
    match = _DURATION.match(text.strip())
    if match:
        return now + timedelta(**{_DURATION_UNITS[match.group(2)]: int(match.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InvalidAction(f"{text!r} is neither a duration (30m, 4h, 2d, 1w) nor an ISO 8601 time") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _future(moment: datetime, now: datetime, what: str) -> datetime:
    if moment <= now:
        raise ExpiredRule(f"{what} {moment.isoformat(timespec='seconds')} is not in the future "
                          f"(now {now.isoformat(timespec='seconds')}): it would cover nothing")
    return moment


def _incident(connection: sa.Connection, incident_id: int) -> Mapping[str, Any]:
    row = connection.execute(sql.query("recon/queries/incident_by_id.sql"), {"incident_id": incident_id}
                             ).mappings().first()
    if row is None:
        raise UnknownIncident(f"no incident {incident_id} (recon incidents list shows them)")
    return row


def acknowledge(engine: Engine, incident_id: int, *, until: datetime, actor: str, reason: str,
                now: datetime | None = None) -> Mapping[str, Any]:
    """Hold the incident's alerts until `until`; audited."""
    now = now or datetime.now(UTC)
    _future(until, now, "the acknowledgement's expiry")
    with engine.begin() as connection:
        incident = _incident(connection, incident_id)
        if incident["state"] == "resolved":
            raise InvalidAction(f"incident {incident_id} is resolved: there is nothing to acknowledge")
        connection.execute(sql.query("recon/queries/incident_acknowledge.sql"), {
            "incident_id": incident_id, "until": until, "actor": actor, "reason": reason, "at": now})
        return _incident(connection, incident_id)


@dataclass(frozen=True)
class ExemptionRule:
    domain: str
    entity_pattern: str
    field: str | None
    drift_class: str | None
    direction: str | None
    max_abs_delta: int | None
    owner: str
    reason: str
    expires_at: datetime

    def __post_init__(self) -> None:
        identifier(self.domain, "the domain")
        if not self.entity_pattern.strip():
            raise InvalidAction("the entity pattern is empty (use * for every entity)")
        if self.drift_class is not None and self.drift_class not in {c.value for c in DriftClass}:
            raise InvalidAction(f"unknown drift class {self.drift_class!r}; known: "
                                f"{', '.join(c.value for c in DriftClass)}")
        if self.direction is not None and self.direction not in DIRECTIONS:
            raise InvalidAction(f"direction must be one of {', '.join(DIRECTIONS)}, got {self.direction!r}")
        if self.max_abs_delta is not None and self.max_abs_delta < 0:
            raise InvalidAction("the largest |delta| an exemption covers cannot be negative")
        if not self.owner.strip() or not self.reason.strip():
            raise InvalidAction("an exemption needs an owner and a reason")


def _known_domains(connection: sa.Connection) -> set[str]:
    return set(connection.execute(sql.query("recon/queries/known_domains.sql")).scalars())


def create_exemption(engine: Engine, rule: ExemptionRule, *, actor: str,
                     now: datetime | None = None) -> tuple[int, list[int]]:
    """Create the rule and exempt the unresolved incidents it matches now; returns (rule id, incidents)."""
    now = now or datetime.now(UTC)
    _future(rule.expires_at, now, "the exemption's expiry")
    with engine.begin() as connection:
        domains = _known_domains(connection)
        if rule.domain not in domains:
            raise InvalidAction(f"unknown domain {rule.domain!r}; known: {', '.join(sorted(domains)) or 'none yet'}")
        rule_id = connection.execute(sql.query("recon/queries/exemption_create.sql"), {
            **vars(rule), "max_abs_delta": None if rule.max_abs_delta is None else str(rule.max_abs_delta),
            "created_by": actor, "created_at": now}).scalar_one()
        exempted = connection.execute(sql.query("recon/queries/exemption_apply.sql"), {
            "rule_id": rule_id, "domain": rule.domain, "at": now, "actor": actor, "reason": rule.reason,
        }).scalars().all()
    return int(rule_id), sorted(int(i) for i in exempted)


def exemption_from_incident(engine: Engine, incident_id: int, *, owner: str, reason: str, expires_at: datetime,
                            direction: str | None = None, max_abs_delta: int | None = None) -> ExemptionRule:
    """The rule exempting exactly this incident's entity, field and drift class."""
    with engine.connect() as connection:
        incident = _incident(connection, incident_id)
    # Entity ids never hold * or ?, so the id is a glob matching that entity alone.
    return ExemptionRule(domain=incident["domain"], entity_pattern=incident["entity_id"], field=incident["field"],
                         drift_class=incident["drift_class"], direction=direction, max_abs_delta=max_abs_delta,
                         owner=owner, reason=reason, expires_at=expires_at)


def revoke_exemption(engine: Engine, rule_id: int, *, actor: str, reason: str,
                     now: datetime | None = None) -> list[int]:
    """End a rule before its expiry; its incidents alert again. Returns the incidents it covered."""
    now = now or datetime.now(UTC)
    with engine.begin() as connection:
        rule = connection.execute(sql.query("recon/queries/exemption_by_id.sql"), {"rule_id": rule_id}
                                  ).mappings().first()
        if rule is None:
            raise UnknownRule(f"no exemption rule {rule_id} (recon incidents rules lists them)")
        if rule["revoked_at"] is not None:
            raise ExpiredRule(f"exemption rule {rule_id} was already revoked at "
                              f"{rule['revoked_at'].isoformat(timespec='seconds')} by {rule['revoked_by']}")
        if rule["expires_at"] <= now:
            raise ExpiredRule(f"exemption rule {rule_id} expired at {rule['expires_at'].isoformat(timespec='seconds')}"
                              ": it covers nothing any more")
        return sorted(int(i) for i in connection.execute(sql.query("recon/queries/exemption_revoke.sql"), {
            "rule_id": rule_id, "actor": actor, "reason": reason, "at": now}).scalars())


def resolve(engine: Engine, incident_id: int, *, actor: str, note: str,
            now: datetime | None = None) -> Mapping[str, Any]:
    """Resolve by hand with a note; audited. Drift that comes back reopens it."""
    now = now or datetime.now(UTC)
    if not note.strip():
        raise InvalidAction("a manual resolution needs a note saying why")
    with engine.begin() as connection:
        incident = _incident(connection, incident_id)
        if incident["state"] == "resolved":
            raise InvalidAction(f"incident {incident_id} is already resolved "
                                f"({incident['resolution'] or 'auto'}, {incident['resolved_at']:%Y-%m-%d %H:%M} UTC)")
        connection.execute(sql.query("recon/queries/incident_resolve.sql"), {
            "incident_id": incident_id, "actor": actor, "note": note, "at": now})
        return _incident(connection, incident_id)


def list_incidents(engine: Engine, *, domain: str | None = None, state: str | None = None,
                   severity: str | None = None, since: datetime | None = None, include_exempt: bool = False,
                   limit: int = 100) -> list[Mapping[str, Any]]:
    """Incidents newest first: unresolved ones unless a state is asked for."""
    if state is not None and state not in STATES:
        raise InvalidAction(f"state must be one of {', '.join(STATES)}, got {state!r}")
    if severity is not None and severity not in {s.value for s in Severity}:
        raise InvalidAction(f"severity must be one of {', '.join(s.value for s in Severity)}, got {severity!r}")
    with engine.connect() as connection:
        return list(connection.execute(sql.query("recon/queries/incident_list.sql"), {
            "domain": domain, "state": state, "severity": severity, "since": since,
            "include_exempt": include_exempt, "limit": limit}).mappings().all())


def show(engine: Engine, incident_id: int) -> dict[str, Any]:
    """The incident, its history, its latest findings and its alerts."""
    with engine.connect() as connection:
        incident = _incident(connection, incident_id)
        params = {"incident_id": incident_id}
        return {
            "incident": dict(incident),
            "events": [dict(r) for r in connection.execute(sql.query("recon/queries/incident_events.sql"),
                                                           params).mappings()],
            "findings": [dict(r) for r in connection.execute(sql.query("recon/queries/incident_findings.sql"),
                                                             params).mappings()],
            "alerts": [dict(r) for r in connection.execute(sql.query("recon/queries/incident_alerts.sql"),
                                                           params).mappings()],
        }


def exemption_rules(engine: Engine, *, include_inactive: bool = False) -> list[Mapping[str, Any]]:
    with engine.connect() as connection:
        return list(connection.execute(sql.query("recon/queries/exemption_list.sql"),
                                       {"include_inactive": include_inactive}).mappings().all())


# -- the command ----------------------------------------------------------------------------

LIST_COLUMNS = ("incident_id", "domain", "entity_id", "field", "drift_class", "severity", "state", "first_seen_at",
                "last_seen_at", "acknowledged_until", "exempt_rule_id", "amount_at_stake")


def _engine() -> Engine:
    """The database of DATABASE_URL, else the demo's embedded one (as `make psql` uses)."""
    from reconciliation_pipeline import localenv
    from reconciliation_pipeline.resources import sqlalchemy_url

    url = os.environ.get("DATABASE_URL") or localenv.embedded_database_environment()["DATABASE_URL"]
    return sa.create_engine(sqlalchemy_url(url))


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="seconds")
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    if isinstance(value, Mapping | list):
        return value
    return str(value)


def _print(rows: Sequence[Mapping[str, Any]], columns: Sequence[str] | None, as_json: bool) -> None:
    plain = [{k: _plain(v) for k, v in r.items() if columns is None or k in columns} for r in rows]
    if as_json:
        print(to_json(plain, indent=2))
    elif plain:
        print(tabulate(plain, headers="keys", tablefmt="simple"))
    else:
        print("(none)")


def _since(text: str | None) -> datetime | None:
    if text is None:
        return None
    now = datetime.now(UTC)
    match = _DURATION.match(text.strip())
    if match:
        return now - timedelta(**{_DURATION_UNITS[match.group(2)]: int(match.group(1))})
    return parse_until(text, now)


def _run(args: argparse.Namespace) -> int:
    engine = _engine()
    actor = getattr(args, "by", None) or getpass.getuser()
    now = datetime.now(UTC)
    try:
        if args.action == "list":
            _print(list_incidents(engine, domain=args.domain, state=args.state, severity=args.severity,
                                  since=_since(args.since), include_exempt=args.include_exempt, limit=args.limit),
                   None if args.json else LIST_COLUMNS, args.json)
        elif args.action == "show":
            shown = show(engine, args.incident_id)
            if args.json:
                print(to_json({k: ([{c: _plain(v) for c, v in r.items()} for r in rows] if isinstance(rows, list)
                                      else {c: _plain(v) for c, v in rows.items()}) for k, rows in shown.items()},
                               indent=2))
            else:
                _print([shown["incident"]], None, False)
                for title in ("events", "findings", "alerts"):
                    print(f"\n{title}:")
                    _print(shown[title], None, False)
        elif args.action == "ack":
            incident = acknowledge(engine, args.incident_id, until=parse_until(args.until, now), actor=actor,
                                   reason=args.reason, now=now)
            print(f"incident {args.incident_id} acknowledged by {actor} until "
                  f"{_plain(incident['acknowledged_until'])}: no alert until then")
        elif args.action == "exempt":
            _exempt(engine, args, actor, now)
        elif args.action == "resolve":
            resolve(engine, args.incident_id, actor=actor, note=args.note, now=now)
            print(f"incident {args.incident_id} resolved by {actor}; it reopens if a run sees the drift again")
        elif args.action == "rules":
            _print(exemption_rules(engine, include_inactive=args.all), None, args.json)
    except IncidentError as error:
        print(f"recon incidents {args.action}: {error}", file=sys.stderr)
        return 2
    finally:
        engine.dispose()
    return 0


def _exempt(engine: Engine, args: argparse.Namespace, actor: str, now: datetime) -> None:
    if args.revoke is not None:
        covered = revoke_exemption(engine, args.revoke, actor=actor, reason=args.reason, now=now)
        print(f"exemption rule {args.revoke} revoked by {actor}; {len(covered)} incidents alert again: {covered}")
        return
    if args.expires is None:
        raise InvalidAction("an exemption needs --expires (a duration such as 7d, or an ISO 8601 time)")
    expires = parse_until(args.expires, now)
    owner = args.owner or actor
    max_delta = args.max_delta
    if args.incident_id is not None:
        rule = exemption_from_incident(engine, args.incident_id, owner=owner, reason=args.reason,
                                       expires_at=expires, direction=args.direction, max_abs_delta=max_delta)
    elif args.domain is None:
        raise InvalidAction("give an incident id, or --domain (and --entity, --field, --class) for the rule")
    else:
        rule = ExemptionRule(domain=args.domain, entity_pattern=args.entity, field=args.field,
                             drift_class=args.drift_class, direction=args.direction, max_abs_delta=max_delta,
                             owner=owner, reason=args.reason, expires_at=expires)
    rule_id, exempted = create_exemption(engine, rule, actor=actor, now=now)
    print(f"exemption rule {rule_id} created by {actor} (owner {owner}) until "
          f"{_plain(expires)}; exempts {len(exempted)} open incidents now: {exempted}")


def register(commands: argparse._SubParsersAction) -> None:
    """`recon incidents ...`."""
    incidents = commands.add_parser("incidents", help="the on-call workflow: list, show, ack, exempt, resolve")
    actions = incidents.add_subparsers(dest="action", required=True)
    incidents.set_defaults(handler=_run)

    def who(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--by", help="who acts (recorded in recon.incident_events); default: your login")

    listing = actions.add_parser("list", help="incidents, newest first (unresolved unless --state says otherwise)")
    listing.add_argument("--domain")
    listing.add_argument("--state", choices=STATES)
    listing.add_argument("--severity", choices=[s.value for s in Severity])
    listing.add_argument("--since", help="seen since: a duration back (24h, 7d) or an ISO 8601 time")
    listing.add_argument("--include-exempt", action="store_true", help="also incidents an exemption covers")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--json", action="store_true")

    showing = actions.add_parser("show", help="one incident: its history, latest findings and alerts")
    showing.add_argument("incident_id", type=int)
    showing.add_argument("--json", action="store_true")

    ack = actions.add_parser("ack", help="no alert until a time; the incident is still tracked")
    ack.add_argument("incident_id", type=int)
    ack.add_argument("--until", required=True, help="a duration (30m, 4h, 2d) or an ISO 8601 time")
    ack.add_argument("--reason", required=True)
    who(ack)

    exempt = actions.add_parser("exempt", help="exempt a known case (from an incident, or a rule written out)")
    exempt.add_argument("incident_id", type=int, nargs="?", help="exempt this incident's entity, field and class")
    exempt.add_argument("--domain")
    exempt.add_argument("--entity", default="*", help="glob over entity ids (stream_*, user_1?); default *")
    exempt.add_argument("--field")
    exempt.add_argument("--class", dest="drift_class", help="drift class, e.g. VALUE_MISMATCH")
    exempt.add_argument("--direction", choices=DIRECTIONS, help="only drift in this direction (chain - database)")
    exempt.add_argument("--max-delta", type=int, help="only |delta| up to this many base units")
    exempt.add_argument("--owner", help="answerable for the case; default: who acts")
    exempt.add_argument("--reason", required=True)
    exempt.add_argument("--expires", help="a duration (7d) or an ISO 8601 time")
    exempt.add_argument("--revoke", type=int, metavar="RULE_ID", help="end this rule before its expiry")
    who(exempt)

    resolving = actions.add_parser("resolve", help="resolve by hand; a returning drift reopens it")
    resolving.add_argument("incident_id", type=int)
    resolving.add_argument("--note", required=True)
    who(resolving)

    rules = actions.add_parser("rules", help="exemption rules in force (--all: also expired and revoked)")
    rules.add_argument("--all", action="store_true")
    rules.add_argument("--json", action="store_true")
