"""Deterministic identities of the devnet world: contract ids, the USDC issuer, tokens.

Derived from fixed labels so every process (the demo, `make ui`'s devnet, the
tests) agrees on them without sharing state.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

from stellar_sdk import Asset, Keypair, StrKey

from reconciliation_pipeline.settings import SETTINGS_BY_NAME

if TYPE_CHECKING:
    from reconciliation_pipeline.resources import StellarContractsResource

NETWORK_PASSPHRASE = SETTINGS_BY_NAME["STELLAR_NETWORK_PASSPHRASE"].default


def _digest(label: str) -> bytes:
    return hashlib.sha256(f"reconciliation-devnet:{label}".encode()).digest()


def contract_id(label: str) -> str:
    return StrKey.encode_contract(_digest(f"contract:{label}"))


def account_id(label: str) -> str:
    """A G... address for seeded users; nobody holds its key (none is needed to read)."""
    return StrKey.encode_ed25519_public_key(_digest(f"account:{label}"))


def keypair(label: str) -> Keypair:
    """A keypair whose secret is derived from a public label: devnet use only."""
    return Keypair.from_raw_ed25519_seed(_digest(f"keypair:{label}"))


@dataclass(frozen=True)
class DevnetIdentities:
    stream_contract_id: str
    lending_contract_id: str
    amm_contract_id: str
    streak_contract_id: str
    usdc_issuer: str
    usdc_asset_code: str
    network_passphrase: str

    @property
    def usdc_contract_id(self) -> str:
        return Asset(self.usdc_asset_code, self.usdc_issuer).contract_id(self.network_passphrase)

    @property
    def eurc_contract_id(self) -> str:
        """A second token some streams use, so escrow is checked per token."""
        return Asset("EURC", self.usdc_issuer).contract_id(self.network_passphrase)

    def environment(self) -> dict[str, str]:
        """The pipeline's environment variables pointing at this world."""
        return {
            "STREAM_CONTRACT_ID": self.stream_contract_id,
            "LENDING_CONTRACT_ID": self.lending_contract_id,
            "AMM_CONTRACT_ID": self.amm_contract_id,
            "STREAK_CONTRACT_ID": self.streak_contract_id,
            "USDC_ISSUER": self.usdc_issuer,
            "USDC_ASSET_CODE": self.usdc_asset_code,
            "STELLAR_NETWORK_PASSPHRASE": self.network_passphrase,
        }

    def contracts_resource(self) -> StellarContractsResource:
        """The contracts resource bound to this world, for runs that read no environment."""
        from reconciliation_pipeline.resources import StellarContractsResource

        return StellarContractsResource(
            stream_contract_id=self.stream_contract_id,
            lending_contract_id=self.lending_contract_id,
            amm_contract_id=self.amm_contract_id,
            streak_contract_id=self.streak_contract_id,
            usdc_asset_code=self.usdc_asset_code,
            usdc_issuer=self.usdc_issuer,
            network_passphrase=self.network_passphrase,
        )


DEVNET = DevnetIdentities(
    stream_contract_id=contract_id("stream-escrow"),
    lending_contract_id=contract_id("lending-pool"),
    amm_contract_id=contract_id("amm"),
    streak_contract_id=contract_id("streaks"),
    usdc_issuer=keypair("usdc-issuer").public_key,
    usdc_asset_code="USDC",
    network_passphrase=NETWORK_PASSPHRASE,
)
