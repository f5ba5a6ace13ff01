"""Deposits credited from a real chain: the simulator watches an EVM RPC for token transfers to its accounts' deposit
addresses and credits them after the configured confirmations, like Binance does.

`eth_getLogs` over bounded ranges from a cursor (filters do not survive an anvil restart, and only confirmed blocks
protect against reorgs). The credit is idempotent per transaction hash."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Callable

from loguru import logger
from web3 import AsyncHTTPProvider, AsyncWeb3

#: keccak("Transfer(address,address,uint256)")
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"


@dataclass(frozen=True)
class DepositChain:
    network: str  # the exchange's network name, e.g. "BASE"
    rpc_url: str
    token_address: str
    coin: str = "USDC"
    decimals: int = 6
    confirmations: int = 1
    poll_ms: int = 250
    from_block: int = 0
    max_range: int = 2000


class ChainDepositWatcher:
    def __init__(self, chain: DepositChain, addresses: Callable[[str, str], dict[str, str]],
                 credit: Callable[[str, str, Decimal, str, str, str], Any]) -> None:
        """`addresses(coin, network)` -> {deposit address (lower case): api key}; `credit(api_key, coin, amount,
        network, tx_id, address)` books one deposit (idempotent per tx id)."""
        self.chain = chain
        self.addresses = addresses
        self.credit = credit
        self.w3 = AsyncWeb3(AsyncHTTPProvider(chain.rpc_url))
        self.cursor = chain.from_block
        self.credited = 0
        self.errors = 0

    async def poll_once(self) -> int:
        """Read confirmed blocks since the cursor; returns how many transfers were credited."""
        latest = await self.w3.eth.block_number
        # A log in block b has latest - b + 1 confirmations.
        last_confirmed = latest - max(self.chain.confirmations, 1) + 1
        if last_confirmed < self.cursor:
            return 0
        wanted = self.addresses(self.chain.coin, self.chain.network)
        if not wanted:
            self.cursor = last_confirmed + 1
            return 0
        topic_to = ["0x" + "0" * 24 + a[2:].lower() for a in wanted]
        credited = 0
        start = self.cursor
        while start <= last_confirmed:
            end = min(last_confirmed, start + self.chain.max_range - 1)
            logs = await self.w3.eth.get_logs({
                "fromBlock": start, "toBlock": end, "address": AsyncWeb3.to_checksum_address(self.chain.token_address),
                "topics": [TRANSFER_TOPIC, None, topic_to],
            })
            for log in logs:
                to = "0x" + bytes(log["topics"][2])[-20:].hex()
                api_key = wanted.get(to.lower())
                if api_key is None:
                    continue
                amount = Decimal(int.from_bytes(bytes(log["data"]), "big")).scaleb(-self.chain.decimals)
                tx = "0x" + bytes(log["transactionHash"]).hex().removeprefix("0x")
                before = self.credited
                self.credit(api_key, self.chain.coin, amount, self.chain.network, tx, to)
                self.credited = before + 1
                credited += 1
            start = end + 1
        self.cursor = last_confirmed + 1
        return credited

    async def run(self) -> None:
        await poll_forever(self, f"deposit watcher {self.chain.network}")


async def poll_forever(poller: Any, what: str) -> None:
    """`poller.poll_once()` every `poller.chain.poll_ms`. The RPC may be down for a while (anvil restarting): a
    failed poll is counted in `poller.errors`, logged, and tried again (cursors and records are kept)."""
    while True:
        try:
            await poller.poll_once()
        except asyncio.CancelledError:
            raise
        except Exception as e:
            poller.errors += 1
            logger.warning("{} poll failed: {}", what, e)
        await asyncio.sleep(poller.chain.poll_ms / 1000)  # polling cadence of the RPC
