"""A streaming sweep's compared entities are staged for coverage as COPY text Arrow writes a
block at a time: PostgreSQL reads back exactly the rows, entity ids and flags a row-by-row COPY
would have written, across blocks, at both ends of the u64 range, and with an entity type or
prefix holding COPY's own delimiters."""

from __future__ import annotations

import numpy as np
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciliation_pipeline.core.coverage import keyed_copy_blocks
from reconciliation_pipeline.core.results import U64_LIMIT, KeyedEntities, key_set

keys = st.lists(st.one_of(st.integers(0, U64_LIMIT - 1), st.integers(0, 30), st.integers(U64_LIMIT - 30, U64_LIMIT - 1)),
                max_size=60)
names = st.sampled_from(["stream", "user", "tab\there", "back\\slash", "new\nline\r", "\\N", ""])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(keys, names, names, st.booleans(), st.integers(1, 9))
def test_copied_blocks_are_the_rows_of_the_keyed_entities(engine: sa.Engine, drawn: list[int], entity_type: str,
                                                          prefix: str, compared: bool, rows_per_block: int) -> None:
    part = KeyedEntities(entity_type, prefix, key_set(np.unique(np.array(drawn, dtype=np.uint64))))
    with engine.connect() as connection:
        connection.execute(sa.text("CREATE TEMPORARY TABLE seen (entity_type text, entity_id text, checked boolean)"))
        cursor = connection.connection.driver_connection.cursor()
        counted = 0
        with cursor.copy("COPY seen (entity_type, entity_id, checked) FROM STDIN") as copy:
            for block, rows in keyed_copy_blocks(part, compared, rows_per_block):
                copy.write(block)
                counted += rows
        stored = connection.execute(sa.text("SELECT entity_type, entity_id, checked FROM seen")).tuples().all()
        connection.rollback()
    expected = sorted((entity_type, prefix + str(key), compared) for key in set(drawn))
    assert sorted(stored) == expected
    assert counted == len(expected)
