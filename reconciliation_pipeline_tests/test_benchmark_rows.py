"""Where a benchmark's `--write` puts its figures in BENCHMARKS.md: in its own section."""

from __future__ import annotations

import importlib
import sys
from types import ModuleType

import pytest

from reconciliation_pipeline.localenv import PROJECT_ROOT


@pytest.fixture
def fault_injection(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    # The benchmarks are scripts beside their shared helper (bench_env), not a package.
    monkeypatch.syspath_prepend(str(PROJECT_ROOT / "benchmarks"))
    monkeypatch.delitem(sys.modules, "fault_injection", raising=False)
    return importlib.import_module("fault_injection")


def test_a_fault_injection_table_goes_to_the_end_of_its_section_not_of_the_file(fault_injection: ModuleType) -> None:
    section = fault_injection.SECTION
    text = f"# Benchmarks\n\n{section}\n\nintro\n\n| old |\n<!-- old -->\n\n## Next section\n\nits text\n"
    written = fault_injection.with_table_in_section(text, "| new |\n<!-- new -->")
    assert written == (f"# Benchmarks\n\n{section}\n\nintro\n\n| old |\n<!-- old -->\n\n| new |\n<!-- new -->\n"
                       "\n## Next section\n\nits text\n")
    last = fault_injection.with_table_in_section(f"{section}\n\nintro\n", "| new |")
    assert last == f"{section}\n\nintro\n\n| new |\n"


def test_a_first_fault_injection_table_adds_its_section(fault_injection: ModuleType) -> None:
    written = fault_injection.with_table_in_section("# Benchmarks\n\n## Other\n\ntext\n", "| new |")
    assert written == (f"# Benchmarks\n\n## Other\n\ntext\n\n{fault_injection.SECTION}\n\n{fault_injection.INTRO}"
                       "\n\n| new |\n")
