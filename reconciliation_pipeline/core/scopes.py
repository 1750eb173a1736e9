"""Which rows a snapshot holds: the scope filters the core applies around a source's query.

Each source has one canonical query. A scope narrows it with a fixed set of
filters, composed with SQLAlchemy around the query as a subquery, every value
bound by the driver:

- the partition window: rows created before the partition's end;
- one shard of N: the u64 key modulo N (`partitions.shard_of` computes the same);
- changed since a watermark: rows updated since, plus rows whose key (or another
  column, e.g. a wallet) events or open incidents named;
- only these keys (a sensor's run for the users that changed).

Column names come from the spec (checked identifiers), never from stored data.
A u64 key is returned by the query as a number (its column's own type), so
these conditions and the key order use the table's indexes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from reconciliation_pipeline.core.spec import KeyKind, Source, identifier

CREATED_AT = "created_at"
UPDATED_AT = "updated_at"


@dataclass(frozen=True)
class Shard:
    index: int
    count: int


@dataclass(frozen=True)
class Changed:
    """Rows updated after `since`, or whose key is in `keys`, or whose `column` is in `values`.
    `since` None selects every row (no watermark yet: a full sweep)."""

    since: datetime | None
    keys: tuple[str, ...] = ()
    column: str | None = None
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class RowFilter:
    window_end: datetime | None = None
    shard: Shard | None = None
    changed: Changed | None = None
    only_keys: tuple[str, ...] | None = None

    def describe(self) -> str:
        parts = []
        if self.window_end is not None:
            parts.append(f"rows created before {self.window_end.isoformat()}")
        if self.shard is not None:
            parts.append(f"shard {self.shard.index} of {self.shard.count}")
        if self.changed is not None:
            if self.changed.since is None:
                parts.append("every row (full sweep)")
            else:
                named = len(self.changed.keys) + len(self.changed.values)
                parts.append(f"rows written since {self.changed.since.isoformat()} and {named} named by events "
                             "or open incidents")
        if self.only_keys is not None:
            parts.append(f"only {len(self.only_keys)} given keys")
        return "; ".join(parts) or "every row"


def _array(name: str, values: Sequence[str], kind: KeyKind = KeyKind.ADDRESS) -> sa.BindParameter[Any]:
    """Bound keys in the key's own type, so the comparison can use the key's index."""
    if kind is KeyKind.U64:
        return sa.bindparam(name, [int(v) for v in values], type_=postgresql.ARRAY(sa.Numeric))
    return sa.bindparam(name, list(values), type_=postgresql.ARRAY(sa.Text))


def snapshot_statement(source: Source, row_filter: RowFilter) -> sa.Select[Any]:
    """The source's query with the filter's conditions and key order; values bound."""
    entity = sa.text(source.sql.read(source.query)).columns().subquery("entity")
    key = sa.column(source.key_column)
    statement = sa.select(sa.literal_column("*")).select_from(entity)
    if row_filter.window_end is not None:
        statement = statement.where(sa.column(CREATED_AT) < sa.bindparam("window_end", row_filter.window_end))
    if row_filter.shard is not None:
        if source.key_kind is not KeyKind.U64:
            raise ValueError(f"{source.name}: only u64 keys can be sharded")
        statement = statement.where(
            key % sa.bindparam("shard_count", row_filter.shard.count)
            == sa.bindparam("shard", row_filter.shard.index)
        )
    changed = row_filter.changed
    if changed is not None and changed.since is not None:
        conditions = [sa.column(UPDATED_AT) > sa.bindparam("since", changed.since, type_=sa.DateTime(timezone=True)),
                      key == sa.any_(_array("keys", changed.keys, source.key_kind))]
        if changed.column is not None:
            column = sa.column(identifier(changed.column, "a change column"))
            conditions.append(column == sa.any_(_array("values", changed.values)))
        statement = statement.where(sa.or_(*conditions))
    if row_filter.only_keys is not None:
        statement = statement.where(key == sa.any_(_array("only_keys", row_filter.only_keys, source.key_kind)))
    return statement.order_by(key)
