"""An external world as the chain side reads it: the world state (chain/deployment.py) of chains someone else runs,
built from the configuration (RPC URLs, chain ids, each index's token on Base, the accounts' derivation indexes)
and its deployment file (USDC and the Across SpokePools), with the accounts derived from the operator's mnemonic.

The local world writes its world file when it deploys; an external one is described, so `indexmaker up` builds the
same file from the description and the chain actor reads it as it reads the local one."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from chain.deployment import AccountRef, ChainDeployment, WorldState
from chain.deployment_file import DeploymentFile, account_problems, checked_address, load_deployment
from chain.keys import derive_account

#: Where each chain's RPC is in the configuration (`[chain]`).
RPC_FIELDS = {"arbitrum": "arbitrum_rpc", "base": "base_rpc"}
#: The chain that carries the index tokens (domain.md §12.8).
INDEX_CHAIN = "base"


def deployment_path(settings: Any, config_dir: Path) -> Path | None:
    """The configuration's deployment file: `[chain] deployment_file`, relative to `config_dir` unless absolute."""
    name = settings.chain.deployment_file
    if name is None:
        return None
    path = Path(name).expanduser()
    return path if path.is_absolute() else config_dir / path


def index_tokens(settings: Any) -> dict[str, str | None]:
    """Index symbol -> its token's address on the index chain, checksummed (None: not deployed yet); ValueError
    names an index whose address is malformed."""
    out: dict[str, str | None] = {}
    for index, entry in settings.indexes.items():
        token = entry.token.get(INDEX_CHAIN) if isinstance(entry.token, dict) else None
        try:
            out[index] = checked_address(token) if token is not None else None
        except ValueError as exc:
            raise ValueError(f"indexes.{index}.token.{INDEX_CHAIN}: {exc}") from None
    return out


def external_world(settings: Any, deployment: DeploymentFile, mnemonic: str, *,
                   strict: bool = True) -> WorldState:
    """The world state of `deployment` as configured; ValueError naming what is missing or wrong (an RPC, a token,
    an account the mnemonic does not derive). Not `strict` (the world checks, which name these
    themselves), an index without a token is left out and the accounts are not compared."""
    c = settings.chain
    tokens = index_tokens(settings)
    missing = sorted(index for index, token in tokens.items() if token is None)
    if missing and strict:
        raise ValueError(f"indexes {', '.join(missing)}: no token address on {INDEX_CHAIN} "
                         f"(`indexmaker deploy-token SYMBOL` deploys one)")
    chains = {}
    for name, field in RPC_FIELDS.items():
        rpc = getattr(c, field)
        if not rpc:
            raise ValueError(f"chain.{field}: an external world's chains are reached at configured RPC URLs")
        contracts = deployment.chains[name]
        on_index_chain = name == INDEX_CHAIN
        chains[name] = ChainDeployment(
            name=name, chain_id=contracts.chain_id, rpc_url=rpc, usdc=contracts.usdc,
            usdc_decimals=contracts.usdc_decimals, spoke_pool=contracts.spoke_pool,
            spoke_pool_abi=contracts.spoke_pool_abi,
            weth="",  # only the local world's relayer wraps native tokens; nothing else reads it
            start_block=contracts.start_block,
            index_tokens={k: v for k, v in tokens.items() if v} if on_index_chain else {},
            index_token_decimals=c.index_token_decimals if on_index_chain else None)
    accounts = {role: AccountRef(derive_account(mnemonic, index).address, index)
                for role, index in c.account_indexes.items()}
    wrong = account_problems(deployment, c.account_indexes, lambda i: derive_account(mnemonic, i).address)
    if wrong and strict:
        raise ValueError("\n".join(wrong))
    return WorldState(chains=chains, accounts=accounts)


def load_external_world(settings: Any, config_dir: Path, mnemonic: str) -> WorldState:
    """The launcher's world: `external_world` of the configuration's deployment file, strictly."""
    path = deployment_path(settings, config_dir)
    if path is None:
        raise ValueError(f"chain.deployment_file: the {settings.environment} world names its contracts in a "
                         f"deployment file")
    return external_world(settings, load_deployment(path), mnemonic)
