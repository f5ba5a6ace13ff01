"""The exchange side of the route's last hop, through exchange/gateway.py: the deposit address the exchange API gives
for (coin, network), and whether a deposit with our transaction id is credited. Binance deposit statuses: 0
pending, 6 credited but not withdrawable, 1 success (spec/binance.md); 6 and 1 count as credited.

The keys come from the environment (DESIGN.md, Security); the local world's default is the exchange simulator's
public test account, as the chain side's default mnemonic is anvil's.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Awaitable, Callable

CREDITED_STATUSES = (1, 6)
API_KEY_ENV = "INDEXMAKER_EXCHANGE_API_KEY"
SECRET_ENV = "INDEXMAKER_EXCHANGE_SECRET"


@dataclass(frozen=True)
class ExchangeKeys:
    api_key: str
    secret: str = field(repr=False)  # never in a log line

    @classmethod
    def from_env(cls) -> "ExchangeKeys":
        from exchange.simulator.config import TEST_API_KEY, TEST_SECRET

        return cls(os.environ.get(API_KEY_ENV, TEST_API_KEY), os.environ.get(SECRET_ENV, TEST_SECRET))


def deposit_gateway(exchange_config: Any, keys: ExchangeKeys) -> Any:
    """A BinanceGateway for the deposit calls, from core.config's ExchangeConfig."""
    from exchange.gateway import BinanceGateway

    return BinanceGateway.from_config(exchange_config, keys.api_key, keys.secret)


def gateway_deposit_callables(gateway: Any, fixed_address: str | None = None) -> tuple[
        Callable[[str, str], Awaitable[str]], Callable[[str, str, str, Decimal], Awaitable[Decimal | None]]]:
    """(deposit_address, exchange_credited) over a BinanceGateway, as the router's RouteEffects want them.
    `fixed_address` (`[exchange] deposit_address`) answers for an exchange without a capital API."""

    async def deposit_address(coin: str, network: str) -> str:
        if fixed_address is not None:
            return fixed_address
        return (await gateway.fetch_deposit_address(coin, network)).address

    async def exchange_credited(coin: str, network: str, tx_hash: str, amount: Decimal) -> Decimal | None:
        for d in await gateway.fetch_deposits(coin):
            if (d.tx_id or "").lower() == tx_hash.lower() and d.status in CREDITED_STATUSES:
                return d.amount
        return None

    return deposit_address, exchange_credited
