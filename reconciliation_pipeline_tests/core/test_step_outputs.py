"""Step outputs are written whole before anyone reads them: a run loading lending's unpartitioned
`pending_lending_transactions` while another day's run rewrites it gets a complete value."""

from __future__ import annotations

import threading
from pathlib import Path

import dagster as dg
import pandas as pd

from reconciliation_pipeline.core.step_outputs import AtomicPickleIOManager, StepOutputsResource
from reconciliation_pipeline.definitions import pipeline_definitions

PENDING = dg.AssetKey("pending_lending_transactions")


class PausedPickle:
    """Pickles only once `resume` is set, after `started`: a write caught halfway through."""

    def __init__(self, started: threading.Event, resume: threading.Event) -> None:
        self.started, self.resume = started, resume

    def __reduce__(self) -> tuple[type, tuple[str]]:
        self.started.set()
        assert self.resume.wait(30), "the test never resumed the write"
        return str, ("written last",)


def _io_manager(base_dir: Path) -> AtomicPickleIOManager:
    return StepOutputsResource(base_dir=str(base_dir)).create_io_manager(dg.build_init_resource_context())


def _frame(rows: int, tag: str) -> pd.DataFrame:
    return pd.DataFrame({"tx_hash": [f"{tag}{i:060d}" for i in range(rows)], "status": "pending"})


def test_a_reader_gets_the_previous_value_while_another_run_writes(tmp_path: Path) -> None:
    manager = _io_manager(tmp_path)
    first = _frame(10, "a")
    manager.handle_output(dg.build_output_context(asset_key=PENDING), first)

    # The other day's run: several MB pickled (flushed to disk), then caught before its last object.
    started, resume = threading.Event(), threading.Event()
    second = [_frame(50_000, "b"), PausedPickle(started, resume)]
    writer = threading.Thread(target=manager.handle_output,
                              args=(dg.build_output_context(asset_key=PENDING), second))
    writer.start()
    try:
        assert started.wait(30)
        # Dagster's own manager leaves half a pickle at the path here: this load failed with EOFError.
        during = manager.load_input(dg.build_input_context(asset_key=PENDING))
    finally:
        resume.set()
        writer.join(30)
    pd.testing.assert_frame_equal(during, first)

    after = manager.load_input(dg.build_input_context(asset_key=PENDING))
    pd.testing.assert_frame_equal(after[0], second[0])
    assert after[1] == "written last"
    assert [p.name for p in tmp_path.iterdir()] == ["pending_lending_transactions"]  # no partial file left


def test_a_failed_write_keeps_the_stored_value_and_leaves_nothing_behind(tmp_path: Path) -> None:
    manager = _io_manager(tmp_path)
    manager.handle_output(dg.build_output_context(asset_key=PENDING), _frame(3, "a"))
    unpicklable = [_frame(3, "b"), threading.Lock()]
    try:
        manager.handle_output(dg.build_output_context(asset_key=PENDING), unpicklable)
    except TypeError:
        pass
    else:
        raise AssertionError("a lock cannot be pickled")
    pd.testing.assert_frame_equal(manager.load_input(dg.build_input_context(asset_key=PENDING)), _frame(3, "a"))
    assert [p.name for p in tmp_path.iterdir()] == ["pending_lending_transactions"]


def test_partitioned_outputs_keep_the_default_layout(tmp_path: Path) -> None:
    partitions = dg.DailyPartitionsDefinition(start_date="2026-11-01")
    manager = _io_manager(tmp_path)
    context = dg.build_output_context(asset_key=dg.AssetKey("db_loans"), partition_key="2026-11-20",
                                      asset_partitions_def=partitions)
    manager.handle_output(context, _frame(2, "c"))
    assert (tmp_path / "db_loans" / "2026-11-20").is_file()


def test_every_asset_gets_it_under_the_instances_storage_folder() -> None:
    assert isinstance(pipeline_definitions().resources["io_manager"], StepOutputsResource)
    with dg.instance_for_test() as instance:
        manager = StepOutputsResource().create_io_manager(dg.build_init_resource_context(instance=instance))
        assert str(manager._base_path) == instance.storage_directory()
