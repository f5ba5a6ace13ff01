"""Our side of the Across bridge: deposit on the origin SpokePool, find the relayer's fill on the destination.

From spec/chain.md §5-6: `quoteTimestamp` is the origin's latest block (the wall clock may be ahead, and the
deposit would revert); `outputAmount` is input minus a configured fee, rounded DOWN so the relayer never earns
less; the fill is matched by (originChainId, depositId). Both transactions go through the TxSender under the
caller's key: a retried route never deposits twice."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from web3 import AsyncWeb3
from web3.logs import DISCARD

from chain.bytes32 import bytes32_to_address
from chain.tx_sender import TxSender

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
MAX_UINT256 = 2**256 - 1


@dataclass(frozen=True, slots=True)
class BridgeDeposit:
    key: str
    deposit_id: int
    tx_hash: str
    block_number: int
    input_amount: int  # token base units
    output_amount: int
    quote_timestamp: int
    fill_deadline: int
    gas_cost_wei: int  # allowance + deposit transactions
    destination_block: int  # destination head when we deposited: the fill cannot be older


@dataclass(frozen=True, slots=True)
class BridgeFill:
    origin_chain_id: int
    deposit_id: int
    tx_hash: str
    block_number: int
    recipient: str
    amount: int  # what the recipient received (the fill's updatedOutputAmount)
    relayer: str


class AcrossBridge:
    def __init__(self, origin_sender: TxSender, origin_usdc: Any, origin_pool: Any, destination_w3: AsyncWeb3,
                 destination_pool: Any, *, destination_chain_id: int, destination_usdc: str,
                 fill_deadline_s: int = 3600, fill_confirmations: int = 0, max_block_range: int = 2000) -> None:
        self.sender = origin_sender
        self.usdc = origin_usdc
        self.pool = origin_pool
        self.destination_w3 = destination_w3
        self.destination_pool = destination_pool
        self.destination_chain_id = destination_chain_id
        self.destination_usdc = destination_usdc
        self.fill_deadline_s = fill_deadline_s
        self.fill_confirmations = fill_confirmations
        self.max_block_range = max_block_range

    @property
    def origin_chain_id(self) -> int:
        return self.sender.chain_id

    async def deposit(self, key: str, recipient: str, input_amount: int, output_amount: int) -> BridgeDeposit:
        """Deposit `input_amount` USDC from our custody towards `recipient` on the destination, once per `key`."""
        if not (0 < output_amount <= input_amount):
            raise ValueError(f"bridge {key}: need 0 < output {output_amount} <= input {input_amount}")
        owner = self.sender.address
        meta = {"recipient": recipient.lower(), "input": str(input_amount), "output": str(output_amount)}
        # A standing allowance (approve max once, when the current one is short): one transaction per deposit
        # instead of two, so a route is a block shorter. The approval is keyed to the route that needed it, and a
        # replay of that route finds it recorded and counts its gas again, so the route's cost never changes.
        allow_key = f"{key}:allowance"
        allow_gas = 0
        if await self.sender.intent(allow_key) is not None or \
                await self.usdc.functions.allowance(owner, self.pool.address).call() < input_amount:
            allow = await self.sender.send(allow_key, self.usdc.functions.approve(self.pool.address, MAX_UINT256),
                                           meta={"spender": self.pool.address.lower()})
            allow_gas = allow.gas_cost_wei
        existing = await self.sender.intent(f"{key}:deposit")
        destination_block = (existing or {}).get("meta", {}).get("destination_block")
        if destination_block is None:
            destination_block = await self.destination_w3.eth.block_number
        latest = await self.sender.w3.eth.get_block("latest")
        quote = latest["timestamp"]  # from the origin chain, never the wall clock (spec/chain.md pitfall 5)
        call = self.pool.functions.depositV3(
            owner, recipient, self.usdc.address, self.destination_usdc, input_amount, output_amount,
            self.destination_chain_id, ZERO_ADDRESS, quote, quote + self.fill_deadline_s, 0, b"")
        result = await self.sender.send(f"{key}:deposit", call,
                                        meta={**meta, "destination_block": destination_block})
        if not result.ok:
            raise RuntimeError(f"bridge {key}: depositV3 reverted on chain in {result.tx_hash}")
        events = self.pool.events.FundsDeposited().process_receipt(result.receipt, errors=DISCARD)
        if len(events) != 1:
            raise RuntimeError(f"bridge {key}: {len(events)} FundsDeposited logs in {result.tx_hash}")
        args = events[0]["args"]
        return BridgeDeposit(key=key, deposit_id=args["depositId"], tx_hash=result.tx_hash,
                             block_number=result.block_number, input_amount=args["inputAmount"],
                             output_amount=args["outputAmount"], quote_timestamp=args["quoteTimestamp"],
                             fill_deadline=args["fillDeadline"],
                             gas_cost_wei=allow_gas + result.gas_cost_wei,
                             destination_block=int(destination_block))

    async def find_fill(self, deposit_id: int, from_block: int) -> BridgeFill | None:
        """The confirmed fill of our deposit on the destination, or None yet. Scans in bounded ranges."""
        head = await self.destination_w3.eth.block_number
        safe = head - self.fill_confirmations
        start = from_block
        while start <= safe:
            end = min(safe, start + self.max_block_range - 1)
            logs = await self.destination_pool.events.FilledRelay().get_logs(
                from_block=start, to_block=end,
                argument_filters={"originChainId": self.origin_chain_id, "depositId": deposit_id})
            if logs:
                entry = logs[0]
                args = entry["args"]
                info = args["relayExecutionInfo"]
                return BridgeFill(origin_chain_id=args["originChainId"], deposit_id=args["depositId"],
                                  tx_hash=entry["transactionHash"].to_0x_hex(), block_number=entry["blockNumber"],
                                  recipient=bytes32_to_address(info["updatedRecipient"]),
                                  amount=info["updatedOutputAmount"], relayer=bytes32_to_address(args["relayer"]))
            start = end + 1
        return None

    async def origin_time(self) -> int:
        return (await self.sender.w3.eth.get_block("latest"))["timestamp"]

    async def destination_time(self) -> int:
        return (await self.destination_w3.eth.get_block("latest"))["timestamp"]
