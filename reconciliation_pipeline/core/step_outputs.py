"""Where steps hand each other their results: pickles under the instance's storage folder, each
written whole before anyone can read it.

Dagster's default IO manager keeps one file per unpartitioned asset and rewrites it in place, so a
run reading it while another run writes it can load half a file (`EOFError`). Lending's
`provisional_loans` and `pending_lending_transactions` are such assets, materialized by every day
of the nightly job and by the every-5-minutes sweep. This one writes to a temporary file in the
same folder and renames it over the old one (`os.replace`, atomic within a file system, NFS
included): a reader sees the previous value or the new one, never a mix. Paths and format are
the default's, so outputs stored before still load.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import uuid
from typing import Any

import dagster as dg
from pydantic import Field
from upath import UPath


class AtomicPickleIOManager(dg.UPathIOManager):
    """The default IO manager's layout (`<base>/<asset key>[/<partition>]`, pickles), written atomically."""

    extension = ""

    def __init__(self, base_dir: str) -> None:
        super().__init__(base_path=UPath(base_dir))

    def dump_to_path(self, context: dg.OutputContext, obj: Any, path: UPath) -> None:
        # A name of its own per write (two runs may write the same asset at once), created with the
        # default file mode as the default IO manager's files are: other workers read them.
        temporary = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
        try:
            with open(temporary, "xb") as file:
                pickle.dump(obj, file, pickle.HIGHEST_PROTOCOL)
            os.replace(temporary, path)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
            raise

    def load_from_path(self, context: dg.InputContext, path: UPath) -> Any:
        with path.open("rb") as file:
            return pickle.load(file)


class StepOutputsResource(dg.ConfigurableIOManagerFactory):
    """The `io_manager` of every asset: step outputs under `base_dir`, by default the instance's
    storage folder (`$DAGSTER_HOME/storage`, or its `local_artifact_storage`), as Dagster's own."""

    base_dir: str | None = Field(default=None, description="Folder the step outputs are kept in.")

    def create_io_manager(self, context: dg.InitResourceContext) -> AtomicPickleIOManager:
        if self.base_dir is not None:
            return AtomicPickleIOManager(self.base_dir)
        assert context.instance is not None, "the IO manager needs the instance's storage folder"
        return AtomicPickleIOManager(context.instance.storage_directory())
