"""Every number the chain side uses, with defaults (DESIGN.md: no hidden constants).

These belong in core/config.py's ChainConfig; until they are merged there, `ChainSettings.from_config` takes what
ChainConfig already has (confirmations, chain ids) and keeps these defaults for the rest.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from core.route_batch import BatchPolicy


@dataclass(frozen=True)
class ChainSettings:
    arbitrum_chain_id: int = 42161
    base_chain_id: int = 8453
    #: Blocks on top of a user's deposit before it is credited (Arbitrum), and on top of a bridge fill (Base).
    confirmations: int = 2
    fill_confirmations: int = 0
    #: eth_getLogs range cap (real RPCs refuse big ranges) and how many processed blocks reorg checks keep.
    max_block_range: int = 2000
    reorg_window: int = 256
    #: Across: what we offer the relayer (output = input * (1 - rate), rounded down) and the fill deadline.
    bridge_fee_rate: Decimal = Decimal("0.001")
    fill_deadline_s: int = 3600
    #: Gas is charged in USDC at this many USDC per native token (ETH on both chains), per chain id.
    native_price: dict[int, Decimal] = field(default_factory=lambda: {42161: Decimal("3000"), 8453: Decimal("3000")})
    usdc_unit: Decimal = Decimal("0.000001")
    index_token_decimals: int = 18
    #: Own transactions: receipt wait, polling interval, rebroadcasts before giving up for this round.
    receipt_timeout_s: float = 60.0
    poll_s: float = 0.02
    max_broadcasts: int = 5
    retry_backoff_s: float = 0.2
    batch: BatchPolicy = field(default_factory=BatchPolicy)
    coin: str = "USDC"
    network: str = "BASE"

    @classmethod
    def from_config(cls, chain_config: Any, **overrides: Any) -> "ChainSettings":
        base = cls(arbitrum_chain_id=chain_config.arbitrum_chain_id, base_chain_id=chain_config.base_chain_id,
                   confirmations=chain_config.confirmations, index_token_decimals=chain_config.index_token_decimals)
        return replace(base, **overrides)


def router_config(settings: ChainSettings, namespace: str = "router") -> Any:
    """The router's slice of the settings (chain.collateral_router.RouterConfig)."""
    from chain.collateral_router import RouterConfig

    return RouterConfig(destination_chain_id=settings.base_chain_id, unit=settings.usdc_unit, batch=settings.batch,
                        coin=settings.coin, network=settings.network, namespace=namespace)
