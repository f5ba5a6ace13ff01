"""The world state file: where each chain answers and where every contract and account lives.

Why one file: `world/` deploys, everything else (chain connectors, router, exchange simulator, demo) only reads.
Addresses differ per chain on purpose (spec/chain.md pitfall 8), so a binding must always say which chain it means.
Accounts are referenced by derivation index, not by key: the signer derives the key from the mnemonic it is given.
"""
from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


#: 2: a token per index (`index_tokens`); 1 had one `index_token`, which served LEGACY_INDEX.
WORLD_FILE_VERSION = 2
LEGACY_INDEX = "SY100DEV"


def _chain_v2(chain: dict[str, Any]) -> dict[str, Any]:
    """A version-1 chain entry as version 2: its one index token was the token of the index served then."""
    chain = dict(chain)
    if "index_token" in chain:
        token = chain.pop("index_token")
        chain["index_tokens"] = {LEGACY_INDEX: token} if token else {}
    return chain


@dataclass(frozen=True, slots=True)
class AccountRef:
    address: str
    index: int  # BIP-44 index under the mnemonic


@dataclass(frozen=True, slots=True)
class ChainDeployment:
    name: str  # "arbitrum", "base"
    chain_id: int
    rpc_url: str
    usdc: str
    usdc_decimals: int
    spoke_pool: str  # the ERC1967Proxy; call it with `spoke_pool_abi`'s ABI
    spoke_pool_abi: str  # artifact name: "Arbitrum_SpokePool" or "OP_SpokePool"
    weth: str
    start_block: int  # first block after the deployment: log scans start here
    #: Index symbol -> its token's address: only the chain that carries the index tokens (Base) has any.
    index_tokens: dict[str, str] = field(default_factory=dict)
    index_token_decimals: int | None = None
    pid: int | None = None  # the anvil process, for a world started by another process


@dataclass(frozen=True, slots=True)
class WorldState:
    chains: dict[str, ChainDeployment]
    accounts: dict[str, AccountRef]  # role -> account: admin, solver, relayer, base_wallet, custody
    users: list[AccountRef] = field(default_factory=list)

    def chain(self, name: str) -> ChainDeployment:
        try:
            return self.chains[name]
        except KeyError:
            raise KeyError(f"world has no chain {name!r} (has {sorted(self.chains)})") from None

    def by_chain_id(self, chain_id: int) -> ChainDeployment:
        for c in self.chains.values():
            if c.chain_id == chain_id:
                return c
        raise KeyError(f"world has no chain with id {chain_id}")

    def account(self, role: str) -> AccountRef:
        try:
            return self.accounts[role]
        except KeyError:
            raise KeyError(f"world has no account {role!r} (has {sorted(self.accounts)})") from None

    def to_dict(self) -> dict[str, Any]:
        return {"version": WORLD_FILE_VERSION, **asdict(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "WorldState":
        version = data.get("version", 1)
        if version > WORLD_FILE_VERSION:
            raise ValueError(f"world file version {version} is newer than this code reads ({WORLD_FILE_VERSION})")
        return cls(
            chains={k: ChainDeployment(**_chain_v2(v)) for k, v in data["chains"].items()},
            accounts={k: AccountRef(**v) for k, v in data["accounts"].items()},
            users=[AccountRef(**u) for u in data.get("users", [])],
        )

    def save(self, path: str | Path) -> Path:
        """Atomic write (temp file + rename): a reader never sees half a world."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".world-", suffix=".json", dir=path.parent)
        with os.fdopen(fd, "w") as f:
            json.dump(self.to_dict(), f, indent=2, sort_keys=True)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "WorldState":
        return cls.from_dict(json.loads(Path(path).read_text()))
