"""The local chain world: two anvil nodes (Arbitrum 42161, Base 8453) with USDC, the index token and the real Across
SpokePools deployed, accounts funded, and one world state file that the rest of the system reads.

It deploys on automine (15 transactions in milliseconds), then mines at the block pace. With a `state_dir`,
`resume()` restarts the nodes from their state files: same chain, no new deployment.

    python -m world.chains --state-file state/world.json [--block-time 1]"""
from __future__ import annotations

import argparse
import dataclasses
import signal
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from web3 import Web3

import core  # noqa: F401  (decimal context)
from chain.artifacts import load_artifact
from chain.deployment import AccountRef, ChainDeployment, WorldState
from chain.keys import DEV_MNEMONIC, derive_account
from core.money import to_units
from world.anvil_node import AnvilNode
from world.contracts_deployer import deploy_chain, deploy_index_token, mint_usdc
from world.evm_signer import EvmSigner
from world.ports import LOOPBACK, port_is_free

#: Who does what, by derivation index under the mnemonic. Users follow from `first_user_index`.
DEFAULT_ROLES = {"admin": 0, "solver": 1, "relayer": 2, "base_wallet": 3, "custody": 4}
#: The exchange's hot wallet (it pays the exchange's withdrawals on Base): the account right after the users, so
#: that the users' addresses stay what they were.
HOT_WALLET = "exchange_hot_wallet"


@dataclass(frozen=True)
class LocalChainsConfig:
    arbitrum_chain_id: int = 42161
    base_chain_id: int = 8453
    #: None: automine (a block per transaction; tests make extra blocks with anvil_mine). Else whole seconds per
    #: block (anvil's evm_setIntervalMining takes whole seconds).
    block_time_s: int | None = None
    #: anvil's `safe`/`finalized` lag (32 by default); the product counts confirmations itself.
    slots_in_an_epoch: int | None = None
    mnemonic: str = DEV_MNEMONIC
    roles: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_ROLES))
    first_user_index: int = 5
    users: int = 3
    #: USDC each user holds on each chain at start, and the relayer's float on each chain (whole USDC strings).
    user_usdc: Decimal = Decimal("100000")
    relayer_usdc: Decimal = Decimal("10000000")
    #: The exchange's hot wallet's USDC on Base (it pays the exchange's withdrawals).
    hot_wallet_usdc: Decimal = Decimal("10000000")
    usdc_unit: Decimal = Decimal("0.000001")
    quote_time_buffer_s: int = 3600
    fill_deadline_buffer_s: int = 21600
    #: (symbol, name) of each index whose token the world deploys (settings' registry entries marked "deploy").
    index_tokens: tuple[tuple[str, str], ...] = (("SY100DEV", "IndexMaker SY100 dev"),)
    #: The chain that carries the index token (domain.md §12.8: Base).
    index_chain: str = "base"
    #: With a state dir: seconds between anvil's state dumps besides the one on SIGTERM (what a crash may lose).
    state_interval_s: int = 2
    #: Chain name -> the address its node listens on (the loopback where none is named).
    hosts: dict[str, str] = field(default_factory=dict)


class LocalChains:
    """Start both nodes, deploy, fund, write the world file; `stop()` sends SIGTERM to both."""

    def __init__(self, config: LocalChainsConfig | None = None, *, state_file: Path | None = None,
                 state_dir: Path | None = None) -> None:
        self.config = config or LocalChainsConfig()
        if self.config.block_time_s is not None and (self.config.block_time_s < 1 or
                                                     self.config.block_time_s != int(self.config.block_time_s)):
            raise ValueError(f"block_time_s must be whole seconds >= 1, got {self.config.block_time_s}")
        self.state_file = state_file
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.nodes = {"arbitrum": self._node(self.config.arbitrum_chain_id, "arbitrum"),
                      "base": self._node(self.config.base_chain_id, "base")}
        self.state: WorldState | None = None

    def _node(self, chain_id: int, name: str, port: int | None = None) -> AnvilNode:
        cfg = self.config
        return AnvilNode(chain_id, port=port, accounts=cfg.first_user_index + cfg.users + 1,  # + the hot wallet
                         host=cfg.hosts.get(name, LOOPBACK),
                         slots_in_an_epoch=cfg.slots_in_an_epoch, mnemonic=cfg.mnemonic,
                         state_file=self.chain_state_file(name),
                         state_interval_s=cfg.state_interval_s if self.state_dir is not None else None)

    def chain_state_file(self, name: str) -> Path | None:
        return self.state_dir / f"anvil-{name}.json" if self.state_dir is not None else None

    def can_resume(self) -> bool:
        """A world file and every chain's state file are there."""
        return (self.state_file is not None and self.state_file.is_file() and self.state_dir is not None
                and all(self.chain_state_file(n).is_file() for n in self.nodes))  # type: ignore[union-attr]

    def resume(self) -> WorldState:
        """Start both nodes from their saved chains, on the ports the world file names (another free one if that
        port is taken now; the world file is then rewritten). Checks the deployment is there. Nothing is deployed."""
        if not self.can_resume():
            raise FileNotFoundError(f"no saved world to resume in {self.state_dir} (world file {self.state_file})")
        saved = WorldState.load(self.state_file)  # type: ignore[arg-type]
        try:
            chains = {}
            for name, deployment in saved.chains.items():
                port = int(deployment.rpc_url.rsplit(":", 1)[1])
                node = self.nodes[name] = self._node(deployment.chain_id, name, port if port_is_free(port) else None)
                node.start()
                code = node.call("eth_getCode", deployment.usdc, "latest")
                if code in (None, "0x", "0x0"):
                    raise RuntimeError(f"chain {name}: the saved state {self.chain_state_file(name)} has no USDC "
                                       f"contract at {deployment.usdc}: the state is lost; start fresh")
                chains[name] = self._with_new_tokens(dataclasses.replace(deployment, rpc_url=node.url, pid=node.pid),
                                                     saved.account("solver").address)
            if self.config.block_time_s is not None:
                for node in self.nodes.values():
                    node.call("evm_setIntervalMining", int(self.config.block_time_s))
            self.state = WorldState(chains=chains, accounts=saved.accounts, users=saved.users)
            if self.state != saved:
                self.state.save(self.state_file)  # type: ignore[arg-type]
            return self.state
        except BaseException:
            self.stop()
            raise

    def _with_new_tokens(self, deployment: ChainDeployment, minter: str) -> ChainDeployment:
        """An index added to the registry since the world was made gets its token now (the others keep theirs)."""
        missing = [(s, n) for s, n in self.config.index_tokens if s not in deployment.index_tokens]
        if deployment.name != self.config.index_chain or not missing:
            return deployment
        admin = EvmSigner(Web3(Web3.HTTPProvider(deployment.rpc_url)), self.account(self.config.roles["admin"]))
        added = {s: deploy_index_token(admin, s, n, minter) for s, n in missing}
        return dataclasses.replace(deployment, index_tokens={**deployment.index_tokens, **added},
                                   index_token_decimals=18)

    def account(self, index: int):  # noqa: ANN201  (LocalAccount)
        return derive_account(self.config.mnemonic, index)

    def start(self) -> WorldState:
        """Both chains are started and deployed in parallel (they are independent): about half the wall time.
        A fresh world: chain state files left from an earlier world are removed first."""
        cfg = self.config
        for name in self.nodes:
            saved = self.chain_state_file(name)
            if saved is not None:
                saved.unlink(missing_ok=True)
        try:
            roles = {role: AccountRef(self.account(i).address, i) for role, i in cfg.roles.items()}
            hot = cfg.first_user_index + cfg.users
            roles[HOT_WALLET] = AccountRef(self.account(hot).address, hot)
            users = [AccountRef(self.account(i).address, i)
                     for i in range(cfg.first_user_index, cfg.first_user_index + cfg.users)]
            with ThreadPoolExecutor(max_workers=len(self.nodes)) as pool:
                futures = {name: pool.submit(self._start_chain, name, offset, roles, users)
                           for offset, name in enumerate(self.nodes)}
                chains = {name: f.result() for name, f in futures.items()}
            if cfg.block_time_s is not None:
                for node in self.nodes.values():
                    node.call("evm_setIntervalMining", int(cfg.block_time_s))
            self.state = WorldState(chains=chains, accounts=roles, users=users)
            if self.state_file is not None:
                self.state.save(self.state_file)
            return self.state
        except BaseException:
            self.stop()
            raise

    def _start_chain(self, name: str, offset: int, roles: dict[str, AccountRef],
                     users: list[AccountRef]) -> ChainDeployment:
        cfg = self.config
        node = self.nodes[name].start()
        w3 = Web3(Web3.HTTPProvider(node.url))
        admin = EvmSigner(w3, self.account(cfg.roles["admin"]))
        index_tokens = cfg.index_tokens if name == cfg.index_chain else ()
        # offset: the second chain's admin burns a nonce first, so no address is the same on both chains.
        deployed = deploy_chain(admin, name, quote_time_buffer_s=cfg.quote_time_buffer_s,
                                fill_deadline_buffer_s=cfg.fill_deadline_buffer_s,
                                index_tokens=index_tokens, minter=roles["solver"].address,
                                nonce_offset=offset)
        # Users hold USDC on both chains: a deposit may come from either (Base deposits skip the bridge).
        for user in users:
            mint_usdc(admin, deployed.usdc, user.address, to_units(cfg.user_usdc, cfg.usdc_unit))
        if name != "arbitrum":
            mint_usdc(admin, deployed.usdc, roles[HOT_WALLET].address, to_units(cfg.hot_wallet_usdc, cfg.usdc_unit))
        # The relayer fills on both chains: deposits towards Base (users' collateral) and towards Arbitrum (their
        # withdrawals).
        mint_usdc(admin, deployed.usdc, roles["relayer"].address, to_units(cfg.relayer_usdc, cfg.usdc_unit))
        # Relayers keep a standing approval of their float to the pool: a fill is then one transaction.
        relayer = EvmSigner(w3, self.account(cfg.roles["relayer"]))
        usdc = w3.eth.contract(address=deployed.usdc, abi=load_artifact("ExpandedERC20").abi)
        relayer.transact(usdc.functions.approve(deployed.spoke_pool, 2**256 - 1))
        return ChainDeployment(
            name=name, chain_id=node.chain_id, rpc_url=node.url, usdc=deployed.usdc, usdc_decimals=6,
            spoke_pool=deployed.spoke_pool, spoke_pool_abi=deployed.spoke_pool_abi, weth=deployed.weth,
            start_block=w3.eth.block_number + 1, index_tokens=deployed.index_tokens,
            index_token_decimals=18 if deployed.index_tokens else None, pid=node.pid)

    def stop(self) -> None:
        """SIGTERM to both nodes: with a state dir, each writes its chain to its state file first."""
        for node in self.nodes.values():
            node.stop()

    def __enter__(self) -> WorldState:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    from world.relayer import AcrossRelayer

    parser = argparse.ArgumentParser(prog="python -m world.chains", description=__doc__.split("\n\n")[0])
    parser.add_argument("--state-file", type=Path, default=Path("state/world.json"))
    parser.add_argument("--block-time", type=int, default=None)
    parser.add_argument("--users", type=int, default=3)
    args = parser.parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    chains = LocalChains(LocalChainsConfig(block_time_s=args.block_time, users=args.users), state_file=args.state_file)
    state = chains.start()
    relayer = AcrossRelayer.from_world(state, mnemonic=chains.config.mnemonic)
    relayer.start()
    print(f"world up: {args.state_file} (arbitrum {state.chain('arbitrum').rpc_url}, "
          f"base {state.chain('base').rpc_url})",
          flush=True)
    try:
        stop.wait()
    finally:
        relayer.stop()
        chains.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
