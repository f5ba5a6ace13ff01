"""Contract bindings for one chain of the world, for web3 (sync) or AsyncWeb3 alike.

ABIs come from the npm artifacts (chain/artifacts.py); addresses from the world state file (chain/deployment.py).
The SpokePool proxy is called with its implementation's ABI (spec/chain.md pitfall 4).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from chain.artifacts import load_artifact
from chain.deployment import ChainDeployment

ERC20_ARTIFACT = "ExpandedERC20"


@dataclass(frozen=True, slots=True)
class ChainContracts:
    usdc: Any
    spoke_pool: Any
    index_tokens: dict[str, Any]  # index symbol -> its token contract


def erc20(w3: Any, address: str) -> Any:
    return w3.eth.contract(address=address, abi=load_artifact(ERC20_ARTIFACT).abi)


def spoke_pool(w3: Any, address: str, abi_name: str) -> Any:
    return w3.eth.contract(address=address, abi=load_artifact(abi_name).abi)


def bind(w3: Any, deployment: ChainDeployment) -> ChainContracts:
    return ChainContracts(
        usdc=erc20(w3, deployment.usdc),
        spoke_pool=spoke_pool(w3, deployment.spoke_pool, deployment.spoke_pool_abi),
        index_tokens={index: erc20(w3, address) for index, address in deployment.index_tokens.items()},
    )
