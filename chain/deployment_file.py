"""An external world's deployment file (config/deployments/<environment>.toml): where USDC and the Across
SpokePools live on each chain, with the source of every address in a comment beside it.

The local world writes its own world file (chain/deployment.py) when it deploys; an external world's contracts are
someone else's, so the operator names them here and `config check` validates them against the configuration (chain
ids, addresses well formed and checksummed). Index tokens are in the index registry (`[indexes.X] token`): the
operator deploys those."""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator
from web3 import Web3

#: The chains a deployment names: deposits arrive on Arbitrum, tokens are minted on Base (spec/chain.md).
CHAINS = ("arbitrum", "base")


def checked_address(value: Any) -> str:
    """`value` as a checksummed EVM address; ValueError if it is none, or fails its EIP-55 checksum."""
    if not isinstance(value, str) or not Web3.is_address(value):
        raise ValueError(f"not an EVM address: {value!r}")
    if value != value.lower() and not Web3.is_checksum_address(value):
        raise ValueError(f"{value} fails its EIP-55 checksum (a mistyped letter?)")
    return Web3.to_checksum_address(value)


class ChainContracts(BaseModel):
    """One chain's contracts. `spoke_pool_abi` names the artifact whose ABI the pool answers to."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    chain_id: int
    usdc: str
    usdc_decimals: int = 6
    spoke_pool: str
    spoke_pool_abi: Literal["Arbitrum_SpokePool", "OP_SpokePool"]
    #: Log scans for deposits start here (the block custody was set up in).
    start_block: int = 0

    @field_validator("usdc", "spoke_pool", mode="before")
    @classmethod
    def _checked(cls, v: Any) -> str:
        return checked_address(v)


class DeploymentFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    version: Literal[1]
    environment: str
    chains: dict[str, ChainContracts]
    #: The system's own accounts by role (custody, base_wallet, solver, admin), as the operator's mnemonic derives
    #: them at `[chain] account_indexes`: named here so that `up` checks the keys it has are the world's.
    accounts: dict[str, str] = {}

    @field_validator("accounts", mode="before")
    @classmethod
    def _accounts(cls, v: Any) -> dict[str, str]:
        if not isinstance(v, dict):
            raise ValueError("accounts: a table role -> address")
        return {role: checked_address(address) for role, address in v.items()}


def load_deployment(path: str | Path) -> DeploymentFile:
    """The file, validated; ValueError with every problem, one per line, if it is not a valid deployment."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: {exc}") from None
    try:
        return DeploymentFile.model_validate(raw)
    except ValidationError as exc:
        lines = [f"{path}: {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise ValueError("\n".join(lines)) from None


def deployment_problems(deployment: DeploymentFile, settings: Any) -> list[str]:
    """What does not agree with the configuration: the environment, both chains present, their chain ids."""
    problems = []
    if deployment.environment != settings.environment:
        problems.append(f"deployment is for {deployment.environment!r}, the configuration for "
                        f"{settings.environment!r}")
    wanted = {"arbitrum": settings.chain.arbitrum_chain_id, "base": settings.chain.base_chain_id}
    for name in CHAINS:
        contracts = deployment.chains.get(name)
        if contracts is None:
            problems.append(f"deployment names no {name} chain")
        elif contracts.chain_id != wanted[name]:
            problems.append(f"deployment's {name} chain id {contracts.chain_id} differs from the configuration's "
                            f"{wanted[name]}")
        elif contracts.usdc_decimals != settings.chain.usdc_decimals:
            problems.append(f"deployment's {name} USDC has {contracts.usdc_decimals} decimals, the configuration "
                            f"{settings.chain.usdc_decimals}")
    problems += [f"deployment's accounts.{role}: no such role (roles: {', '.join(settings.chain.account_indexes)})"
                 for role in deployment.accounts if role not in settings.chain.account_indexes]
    return problems


def account_problems(deployment: DeploymentFile, account_indexes: dict[str, int], derive: Any) -> list[str]:
    """Each account the deployment names that `derive(index)` (the operator's mnemonic) does not give: the keys at
    hand are not the world's."""
    problems = []
    for role, address in deployment.accounts.items():
        index = account_indexes.get(role)
        if index is not None and derive(index) != address:
            problems.append(f"account {role}: the mnemonic derives {derive(index)} at index {index}, the deployment "
                            f"file names {address} (another mnemonic, or another index in [chain] account_indexes)")
    return problems
