"""A local Across relayer: part of the world, not of the product.

On mainnet independent relayers fill deposits on the destination (`fillRelay`) and are repaid later; locally
this one does, from a pre-funded float (refunds are not simulated: spec/chain.md §6). Idempotent: it reads the
relay's `fillStatuses` before filling. It keeps only an in-memory cursor and rescans if the origin chain went
backwards, so it needs no store."""
from __future__ import annotations

import logging
import threading
from typing import Any

from eth_account.signers.local import LocalAccount
from web3 import Web3
from web3.exceptions import ContractCustomError, ContractLogicError

from chain.artifacts import error_selectors, load_artifact
from chain.bytes32 import address_to_bytes32, bytes32_to_address
from chain.deployment import ChainDeployment, WorldState
from chain.keys import derive_account
from world.evm_signer import EvmSigner

log = logging.getLogger(__name__)

FILLED = 2  # SpokePool.fillStatuses: 0 Unfilled, 1 RequestedSlowFill, 2 Filled
MAX_UINT256 = 2**256 - 1

#: V3RelayData in struct order (which is not the event's order: spec/chain.md pitfall 6).
RELAY_DATA_FIELDS = ("depositor", "recipient", "exclusiveRelayer", "inputToken", "outputToken", "inputAmount",
                     "outputAmount", "originChainId", "depositId", "fillDeadline", "exclusivityDeadline", "message")


def relay_data(event_args: Any, origin_chain_id: int) -> tuple:
    """The `fillRelay` tuple built by field name from a FundsDeposited log, with the origin chain added."""
    values = dict(event_args)
    values["originChainId"] = origin_chain_id
    return tuple(values[name] for name in RELAY_DATA_FIELDS)


class AcrossRelayer:
    def __init__(self, origin: ChainDeployment, destination: ChainDeployment, account: LocalAccount, *,
                 poll_s: float = 0.05, max_block_range: int = 2000) -> None:
        self.origin = origin
        self.destination = destination
        self.poll_s = poll_s
        self.max_block_range = max_block_range
        self.origin_w3 = Web3(Web3.HTTPProvider(origin.rpc_url))
        self.dest_w3 = Web3(Web3.HTTPProvider(destination.rpc_url))
        self.signer = EvmSigner(self.dest_w3, account)
        self.origin_pool = self.origin_w3.eth.contract(address=origin.spoke_pool,
                                                       abi=load_artifact(origin.spoke_pool_abi).abi)
        dest_abi = load_artifact(destination.spoke_pool_abi).abi
        self.dest_pool = self.dest_w3.eth.contract(address=destination.spoke_pool, abi=dest_abi)
        self.dest_usdc = self.dest_w3.eth.contract(address=destination.usdc, abi=load_artifact("ExpandedERC20").abi)
        self.errors = error_selectors(dest_abi)
        self.cursor = origin.start_block
        self.filled: list[str] = []  # fill tx hashes, in order (for tests and the bench)
        self.skipped: dict[str, str] = {}  # relay hash -> why it was not filled
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_world(cls, state: WorldState, *, mnemonic: str, origin: str = "arbitrum", destination: str = "base",
                   **kwargs: Any) -> "AcrossRelayer":
        account = derive_account(mnemonic, state.account("relayer").index)
        return cls(state.chain(origin), state.chain(destination), account, **kwargs)

    def poll_once(self) -> list[str]:
        """Fill every unfilled deposit towards the destination seen since the cursor; returns the fill tx hashes."""
        with self._lock:
            head = self.origin_w3.eth.block_number
            if head + 1 < self.cursor:  # the origin went backwards (revert): rescan; fillStatuses prevents refills
                self.cursor = self.origin.start_block
            done: list[str] = []
            while self.cursor <= head:
                to_block = min(head, self.cursor + self.max_block_range - 1)
                logs = self.origin_pool.events.FundsDeposited().get_logs(
                    from_block=self.cursor, to_block=to_block,
                    argument_filters={"destinationChainId": self.destination.chain_id})
                for entry in logs:
                    tx = self._fill(entry)
                    if tx is not None:
                        done.append(tx)
                self.cursor = to_block + 1
            self.filled.extend(done)
            return done

    def _fill(self, entry: Any) -> str | None:
        data = relay_data(entry["args"], self.origin.chain_id)
        relay_hash = self.dest_pool.functions.getV3RelayHash(data).call()
        if self.dest_pool.functions.fillStatuses(relay_hash).call() == FILLED:
            return None
        args = entry["args"]
        if bytes32_to_address(args["outputToken"]) != self.destination.usdc:
            self.skipped[relay_hash.hex()] = "output token is not the destination USDC"
            return None
        if self.dest_usdc.functions.allowance(self.signer.address, self.destination.spoke_pool).call() < \
                args["outputAmount"]:
            self.signer.transact(self.dest_usdc.functions.approve(self.destination.spoke_pool, MAX_UINT256))
        try:
            receipt = self.signer.transact(self.dest_pool.functions.fillRelay(
                data, self.origin.chain_id, address_to_bytes32(self.signer.address)))
        except ContractCustomError as exc:  # RelayFilled, ExpiredFillDeadline, ...: not ours to retry
            reason = self.errors.get(str(exc.data)[:10], str(exc.data))
            self.skipped[relay_hash.hex()] = reason
            log.warning("relayer: deposit %s not filled: %s", args["depositId"], reason)
            return None
        except ContractLogicError as exc:
            self.skipped[relay_hash.hex()] = str(exc)
            log.warning("relayer: deposit %s not filled: %s", args["depositId"], exc)
            return None
        return receipt["transactionHash"].to_0x_hex()

    # --- background thread --------------------------------------------------------------------------------------

    def start(self) -> "AcrossRelayer":
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="across-relayer", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:  # a node hiccup must not kill the world's relayer; it retries next poll
                log.exception("relayer poll failed")
            self._stop.wait(self.poll_s)  # the poll interval, not a synchronisation

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> "AcrossRelayer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
