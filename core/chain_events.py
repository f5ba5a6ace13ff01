"""Events the chain side hands to the rest of the system, as plain data (DESIGN.md: messages between actors are
dataclasses defined in core).

Every event carries its idempotency key, (chain id, tx hash, log index): a replay after a restart or a re-read
after a reorg books nothing twice.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from core.money import D


def event_key(chain_id: int, tx_hash: str, log_index: int) -> str:
    """The one spelling of a log's identity: `<chain>:<0x tx hash, lower case>:<log index>`."""
    return f"{chain_id}:{tx_hash.lower()}:{log_index}"


@dataclass(frozen=True, slots=True)
class CollateralDeposit:
    """A user's USDC transfer to our custody address, seen with the configured confirmations."""

    chain_id: int
    tx_hash: str
    log_index: int
    block_number: int
    user: str  # the sender's address: the account credited
    amount: Decimal  # USDC (whole micro-USDC)

    @property
    def key(self) -> str:
        return event_key(self.chain_id, self.tx_hash, self.log_index)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "amount": str(self.amount)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CollateralDeposit":
        return cls(**{**data, "amount": D(data["amount"])})


@dataclass(frozen=True, slots=True)
class ChainReorg:
    """Blocks the listener had processed were replaced. `orphaned` are keys of events it had already handed out
    from the replaced blocks: they were final for the configured confirmations and may now be gone, so an
    operator must look (the confirmations setting was too low for this chain)."""

    chain_id: int
    ancestor: int  # the newest processed block that is still on the chain
    depth: int  # processed blocks replaced
    orphaned: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DepositReversal:
    """A deposit credited before and then dropped by a reorg deeper than the confirmations: `amount` goes back out
    of its user's collateral. `routed`: its money had already left custody when the reorg was seen (the house is
    short of it until the operator recovers it)."""

    deposit_key: str
    user: str
    amount: Decimal
    routed: bool = False


@dataclass(frozen=True, slots=True)
class TokenDeposit:
    """A user's transfer of an index token to our custody address (on Base, where the index tokens live), seen with
    the configured confirmations: `units` of index `index` to credit for redemption."""

    chain_id: int
    tx_hash: str
    log_index: int
    block_number: int
    user: str  # the sender's address: the account credited
    index: str  # the index symbol the token belongs to
    units: Decimal  # index units (the token's whole base units, scaled by its decimals)

    @property
    def key(self) -> str:
        return event_key(self.chain_id, self.tx_hash, self.log_index)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "units": str(self.units)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TokenDeposit":
        return cls(**{**data, "units": D(data["units"])})
