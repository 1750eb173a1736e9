"""The product as users install it: the wheel, in a fresh virtual environment, with no source tree.

The wheel is built from this checkout and installed without dependencies into a new
virtual environment whose only other path is this project's site-packages (for
dagster, pandas, ...). Editable installs are not followed there, so neither this
checkout, nor the devnet, nor the demo, nor the tests can be imported: what loads is
what the wheel holds. A script, run from an empty folder, loads the definitions from
the installed package and reads every SQL file the package ships, then migrates a
real database with them.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
import textwrap
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

CHECK = textwrap.dedent('''
    import json, sys
    from importlib import resources
    import sqlalchemy as sa
    import reconciliation_pipeline
    from reconciliation_pipeline.core import sql
    from reconciliation_pipeline.definitions import defs
    from reconciliation_pipeline.resources import sqlalchemy_url

    definitions = defs()
    def sql_files(folder):
        for item in folder.iterdir():
            if item.is_dir():
                yield from sql_files(item)
            elif item.name.endswith(".sql"):
                yield item
    files = sorted(str(f) for f in sql_files(sql.PIPELINE_SQL.root))
    texts = [sql.PIPELINE_SQL.read(f.split("/sql/", 1)[1]) for f in files]
    engine = sa.create_engine(sqlalchemy_url(sys.argv[1]))
    applied = sql.apply_recon_migrations(engine)
    unavailable = []
    for name in ("recon_demo", "soroban_devnet", "reconciliation_pipeline_tests"):
        try:
            __import__(name)
        except ModuleNotFoundError:
            unavailable.append(name)
    print(json.dumps({
        "package": reconciliation_pipeline.__file__,
        "jobs": sorted(j.name for j in definitions.jobs),
        "assets": len(list(definitions.resolve_asset_graph().get_all_asset_keys())),
        "sql_files": len(files), "sql_chars": sum(map(len, texts)),
        "migrations": applied, "unavailable": unavailable,
    }, allow_nan=False))
''')


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
                    "--wheel-dir", str(out), str(ROOT)], check=True, cwd=out)
    (built,) = out.glob("reconciliation_pipeline-*.whl")
    return built


def test_the_wheel_holds_the_product_only(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {name.split("/", 1)[0] for name in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"reconciliation_pipeline"}
    assert "reconciliation_pipeline/sql/recon/migrations/001_recon_schema.sql" in names
    assert "reconciliation_pipeline/dg.toml" in names
    assert "reconciliation_pipeline/instance/dagster.yaml" in names  # recon dagster-home links to it


def test_an_installed_wheel_loads_its_definitions_and_every_sql_file(
    wheel: Path, tmp_path: Path, database_url: str
) -> None:
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=False).create(env_dir)
    python = env_dir / "bin" / "python"
    target = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                            check=True, capture_output=True, text=True).stdout.strip()
    # Dependencies come from this project's environment; its editable .pth files are not read from here.
    Path(target, "project_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
                    "--target", target, str(wheel)], check=True)
    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    result = subprocess.run([str(python), "-c", CHECK, database_url], cwd=workdir, capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["package"].startswith(target)
    assert set(report["unavailable"]) == {"recon_demo", "soroban_devnet", "reconciliation_pipeline_tests"}
    assert {"nightly_reconciliation", "markets_balances_reconciliation", "lending_sweep", "streams_incremental",
            "streak_reconciliation", "streams_sharded_sweep", "streams_sharded_escrow"} <= set(report["jobs"])
    assert report["assets"] > 40
    shipped = len([p for p in (ROOT / "reconciliation_pipeline" / "sql").rglob("*.sql")])
    assert report["sql_files"] == shipped and report["sql_chars"] > 0
    assert report["migrations"] == []  # the test database is already migrated: idempotent from the wheel too
