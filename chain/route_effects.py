"""What the collateral router does to the outside world, one method per hop, each idempotent by its key.

`ChainRouteEffects` acts on the chains (Across deposit, fill lookup, USDC transfers) and asks the exchange through
two injected callables, `deposit_address` and `exchange_credited` (actors/exchange_deposits.py makes them): chain/
never imports the exchange. Gas is converted to collateral at a configured rate per chain; the bridge's output is
input minus a configured fee, rounded down."""
from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Awaitable, Callable, Protocol

from web3 import AsyncWeb3

from chain.across_bridge import AcrossBridge
from chain.tx_sender import TxSender
from core.fees import hop_by_rate
from core.gas_cost import gas_cost_in_collateral
from core.money import from_units, to_units

DepositAddress = Callable[[str, str], Awaitable[str]]
ExchangeCredited = Callable[[str, str, str, Decimal], Awaitable[Decimal | None]]


@dataclass(frozen=True, slots=True)
class BridgeSent:
    tx_hash: str
    deposit_id: int
    input_amount: Decimal
    output_amount: Decimal
    gas: Decimal  # in collateral
    gas_wei: int
    block: int
    destination_block: int
    fill_deadline: int


@dataclass(frozen=True, slots=True)
class FillSeen:
    tx_hash: str
    amount: Decimal
    block: int
    recipient: str


@dataclass(frozen=True, slots=True)
class TransferSent:
    tx_hash: str
    gas: Decimal
    gas_wei: int
    block: int


class RouteEffects(Protocol):
    async def bridge(self, key: str, amount: Decimal) -> BridgeSent: ...
    async def find_fill(self, deposit_id: int, from_block: int) -> FillSeen | None: ...
    async def fill_expired(self, fill_deadline: int) -> bool: ...
    async def transfer(self, key: str, address: str, amount: Decimal, *, from_custody: bool = False
                       ) -> TransferSent: ...
    async def deposit_address(self, coin: str, network: str) -> str: ...
    async def exchange_credited(self, coin: str, network: str, tx_hash: str, amount: Decimal) -> Decimal | None: ...


async def _no_exchange(*_: Any) -> Any:
    raise RuntimeError("no exchange wired to these route effects (chain-only use)")


class ChainRouteEffects:
    def __init__(self, bridge: AcrossBridge, destination_sender: TxSender, destination_usdc: Any, *,
                 destination_wallet: str, unit: Decimal, bridge_fee_rate: Decimal,
                 native_price: dict[int, Decimal], deposit_address: DepositAddress = _no_exchange,
                 exchange_credited: ExchangeCredited = _no_exchange,
                 destination_custody: TxSender | None = None) -> None:
        if destination_sender.address != destination_wallet:
            raise ValueError("the destination sender must sign for the wallet the bridge delivers to")
        if destination_custody is not None and destination_custody.chain_id != destination_sender.chain_id:
            raise ValueError("custody's destination sender must sign on the destination chain")
        self.custody = destination_custody
        self.across = bridge
        self.sender = destination_sender
        self.usdc = destination_usdc
        self.wallet = destination_wallet
        self.unit = unit
        self.bridge_fee_rate = bridge_fee_rate
        self.native_price = native_price
        self._deposit_address = deposit_address
        self._exchange_credited = exchange_credited

    def _gas(self, chain_id: int, wei: int) -> Decimal:
        return gas_cost_in_collateral(wei, 1, self.native_price[chain_id], self.unit)

    async def bridge(self, key: str, amount: Decimal) -> BridgeSent:
        output = hop_by_rate("across", amount, self.bridge_fee_rate, self.unit).amount_out
        dep = await self.across.deposit(key, self.wallet, to_units(amount, self.unit), to_units(output, self.unit))
        return BridgeSent(dep.tx_hash, dep.deposit_id, from_units(dep.input_amount, self.unit),
                          from_units(dep.output_amount, self.unit), self._gas(self.across.origin_chain_id,
                                                                              dep.gas_cost_wei),
                          dep.gas_cost_wei, dep.block_number, dep.destination_block, dep.fill_deadline)

    async def find_fill(self, deposit_id: int, from_block: int) -> FillSeen | None:
        fill = await self.across.find_fill(deposit_id, from_block)
        if fill is None:
            return None
        if fill.recipient != self.wallet:
            raise RuntimeError(f"fill of deposit {deposit_id} went to {fill.recipient}, not our wallet {self.wallet}")
        return FillSeen(fill.tx_hash, from_units(fill.amount, self.unit), fill.block_number, fill.recipient)

    async def fill_expired(self, fill_deadline: int) -> bool:
        return await self.across.destination_time() > fill_deadline

    async def transfer(self, key: str, address: str, amount: Decimal, *, from_custody: bool = False
                       ) -> TransferSent:
        """Send `amount` to the exchange from the Base wallet (a bridged route), or from custody on Base (a route
        whose deposit was made on Base: the money never left custody)."""
        sender = self.sender
        if from_custody:
            if self.custody is None:
                raise RuntimeError(f"transfer {key}: no custody sender on the destination chain")
            sender = self.custody
        units = to_units(amount, self.unit)
        # Exchanges hand out deposit addresses in lower case; web3 takes only the checksummed form.
        to = AsyncWeb3.to_checksum_address(address)
        result = await sender.send(key, self.usdc.functions.transfer(to, units),
                                        meta={"to": to.lower(), "units": str(units)})
        if not result.ok:
            raise RuntimeError(f"transfer {key} reverted on chain in {result.tx_hash}")
        return TransferSent(result.tx_hash, self._gas(sender.chain_id, result.gas_cost_wei),
                            result.gas_cost_wei, result.block_number)

    async def deposit_address(self, coin: str, network: str) -> str:
        return await self._deposit_address(coin, network)

    async def exchange_credited(self, coin: str, network: str, tx_hash: str, amount: Decimal) -> Decimal | None:
        return await self._exchange_credited(coin, network, tx_hash, amount)
