"""Adding a reconciled entity is a spec and one SQL file (README, "Add a reconciled entity").

A `Vault(u64)` entry on the lending contract, `Vault { owner: Address, balance: i128 }`,
against a `vaults` table: the spec below and `sql/vaults.sql` are all it takes for its
assets, checks and place in the nightly job to appear, and for it to find injected drift.
No definitions, jobs, schedules or resources file is edited.
"""

from __future__ import annotations

from datetime import datetime

import dagster as dg
import pandas as pd
import pandera.pandas as pa
import pytest
import sqlalchemy as sa
from pandera.typing import Series

from recon_demo import encode
from recon_demo.identities import DEVNET, account_id
from reconciliation_pipeline.chain.fastxdr import SCV_ADDRESS, SCV_I128, SCV_SYMBOL, SCV_U64, SCV_VEC
from reconciliation_pipeline.chain.layouts import Kind, StructLayout
from reconciliation_pipeline.core.amounts import exact_int_mask
from reconciliation_pipeline.core.cadences import shared_jobs
from reconciliation_pipeline.core.drift import Severity
from reconciliation_pipeline.core.factory import build_domain
from reconciliation_pipeline.core.spec import (
    Authority,
    Cadence,
    ComparedField,
    Comparison,
    DataKey,
    DomainSpec,
    Entity,
    Invariants,
    KeyKind,
    Layout,
    Partitioning,
    Scope,
    Source,
)
from reconciliation_pipeline.core.sql import SqlFolder, run_script
from reconciliation_pipeline_tests.conftest import make_resources
from soroban_devnet.ledger import DevnetLedger
from soroban_devnet.server import DevnetServer

VAULT_SQL = SqlFolder("reconciliation_pipeline_tests.defs.vaults")


# -- the whole declaration -------------------------------------------------------------


class VaultInvariants(pa.DataFrameModel):
    balance: Series[object] = pa.Field(ge=0)

    @pa.check("balance", name="exact_integer_amount")
    def exact_integer_amount(cls, values: pd.Series) -> pd.Series:
        return exact_int_mask(values)

    class Config:
        strict = False


VAULTS = Source(
    name="vaults", query="vaults.sql", sql=VAULT_SQL, key_column="vault_id", key_kind=KeyKind.U64,
    entity_type="vault", entity_id_prefix="vault_", amount_columns=("balance",),
    invariants=Invariants(VaultInvariants, "vault_invariants", "balance >= 0, exact", Severity.WARN),
    description="Vaults as the app records them.",
)
VAULT = Entity(
    name="vaults", entity_type="vault", source=VAULTS, key_source=DataKey("Vault", contract="lending_contract_id"),
    layout=Layout.of(StructLayout(fields={"owner": Kind.ADDRESS, "balance": Kind.I128})),
    compared=(ComparedField("balance", Comparison.AMOUNT), ComparedField("owner", Comparison.ADDRESS)),
    authority=Authority.CHAIN, address_columns=("owner",),
    chain_invariants=Invariants(VaultInvariants, "vault_invariants", "balance >= 0, exact", Severity.CRITICAL),
    description="The lending contract's `Vault(u64)` entries.",
)
SPEC = DomainSpec(
    domain="vaults", description="vaults against the lending contract's Vault entries.",
    sources=(VAULTS,), entities=(VAULT,), findings_asset="vault", repairs_asset="vault",
    scopes=(Scope(name="nightly", group="vaults", partitioning=Partitioning.DAILY, window=True,
                  cadence=Cadence.NIGHTLY),),
)


# -- what appears ------------------------------------------------------------------------

def test_the_spec_gives_the_assets_checks_and_a_place_in_the_nightly_job() -> None:
    built = build_domain(SPEC)
    defs = dg.Definitions.merge(built.definitions, shared_jobs(),
                                dg.Definitions(resources=make_resources("postgresql://unused", "http://unused")))
    graph = defs.resolve_asset_graph()
    assets = {k.to_user_string(): {p.to_user_string() for p in graph.get(k).parent_keys}
              for k in graph.get_all_asset_keys()}
    assert assets == {"db_vaults": set(), "chain_vaults": {"db_vaults"},
                      "vault_discrepancies": {"db_vaults", "chain_vaults"}}
    assert {f"{c.asset_key.to_user_string()}:{c.name}" for c in graph.asset_check_keys} == {
        "db_vaults:vault_invariants", "chain_vaults:vault_invariants", "vault_discrepancies:no_critical_drift"}
    nightly = defs.resolve_job_def("nightly_reconciliation")
    assert {k.to_user_string() for k in nightly.asset_layer.executable_asset_keys} == set(assets)


# -- what it finds -------------------------------------------------------------------------


def _vault_entry(vault_id: int, owner: str, balance: int) -> tuple[str, str]:
    key = (SCV_VEC, [(SCV_SYMBOL, "Vault"), (SCV_U64, vault_id)])
    value = encode.struct_value({"owner": (SCV_ADDRESS, owner), "balance": (SCV_I128, balance)})
    return encode.contract_data_entry_b64(DEVNET.lending_contract_id, key, value)


@pytest.fixture
def vaults(engine: sa.Engine, ledger: DevnetLedger) -> None:
    """Three vaults on both sides: 1 agrees, 2's balance drifted in the app, 3 never reached the chain."""
    owner = account_id("vault-owner")
    with engine.begin() as connection:
        run_script(connection, VAULT_SQL.read("vaults_table.sql"))
        connection.execute(sa.text("INSERT INTO vaults (id, owner_address, balance) VALUES (:id, :owner, :balance)"),
                           [{"id": 1, "owner": owner, "balance": 10**30}, {"id": 2, "owner": owner, "balance": 700},
                            {"id": 3, "owner": owner, "balance": 5}])
    ledger.put_raw_entry(*_vault_entry(1, owner, 10**30))
    ledger.put_raw_entry(*_vault_entry(2, owner, 500))


def test_the_new_entity_finds_injected_drift_in_the_nightly_job(
    vaults: None, database_url: str, engine: sa.Engine, devnet: DevnetServer, yesterday: str,
    reference_time: datetime,
) -> None:
    defs = dg.Definitions.merge(build_domain(SPEC).definitions, shared_jobs(),
                                dg.Definitions(resources=make_resources(database_url, devnet.url)))
    result = defs.resolve_job_def("nightly_reconciliation").execute_in_process(partition_key=yesterday)
    assert result.success
    with engine.connect() as connection:
        found = connection.execute(sa.text(
            "SELECT entity_id, field, drift_class, db_value, chain_value, delta::text FROM recon.discrepancies "
            "WHERE domain = 'vaults' ORDER BY entity_id")).all()
    assert [tuple(r) for r in found] == [
        ("vault_2", "balance", "VALUE_MISMATCH", "700", "500", "-200"),
        ("vault_3", "*", "MISSING_ON_CHAIN", None, None, None),
    ]
