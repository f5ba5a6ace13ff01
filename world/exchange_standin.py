"""STAND-IN (faked) exchange deposit side, for the chain tests and bench only.

The real thing is exchange/gateway.py (`fetch_deposit_address`, `fetch_deposits`) in front of the exchange
simulator, which credits deposits it sees on Base. Until the router is wired to it (actors/router_actor.py shows
the adapter), this stand-in plays the exchange: a fixed deposit address, and a deposit counts as "credited" when
its transfer to that address is mined on Base (with `confirmations`). It reads the real chain; only the exchange's
books are faked.
"""
from __future__ import annotations

from decimal import Decimal
from typing import Any

from web3 import AsyncWeb3
from web3.exceptions import TransactionNotFound
from web3.logs import DISCARD

from core.money import from_units


class ChainWatchingExchange:
    def __init__(self, w3: AsyncWeb3, usdc: Any, address: str, *, unit: Decimal = Decimal("0.000001"),
                 confirmations: int = 0) -> None:
        self.w3 = w3
        self.usdc = usdc
        self.address = address
        self.unit = unit
        self.confirmations = confirmations
        self.address_requests = 0
        self.credited: dict[str, Decimal] = {}  # tx hash -> amount, booked once

    async def deposit_address(self, coin: str, network: str) -> str:
        self.address_requests += 1
        return self.address

    async def exchange_credited(self, coin: str, network: str, tx_hash: str, amount: Decimal) -> Decimal | None:
        if tx_hash in self.credited:
            return self.credited[tx_hash]
        try:
            receipt = await self.w3.eth.get_transaction_receipt(tx_hash)
        except TransactionNotFound:
            return None
        if receipt["status"] != 1 or await self.w3.eth.block_number - receipt["blockNumber"] < self.confirmations:
            return None
        units = sum(t["args"]["value"] for t in self.usdc.events.Transfer().process_receipt(receipt, errors=DISCARD)
                    if t["args"]["to"] == self.address)
        if units == 0:
            return None
        self.credited[tx_hash] = from_units(units, self.unit)
        return self.credited[tx_hash]

    async def balance(self) -> Decimal:
        return from_units(await self.usdc.functions.balanceOf(self.address).call(), self.unit)
