"""One user's index tokens deposited for redemption, per index, booked like USDC collateral
(core/collateral_ledger.py): every unit is in exactly one place, and `check()` proves per index

    credited + debt == available + reserved + redeemed + reversed

A deposit is credited once per key (its chain event key); a reorg deeper than the confirmations reverses it once:
the units come out of what is available, then out of sells' reservations the caller cancels first (as
deposit_reversal.py does for USDC); what was already redeemed becomes debt, which blocks new sells of that index.
Units are whole numbers of the token's smallest unit; nothing is rounded."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from decimal import Decimal
from typing import Any

from core.chain_events import TokenDeposit
from core.collateral_ledger import CollateralError, InsufficientCollateral, whole_units
from core.money import ZERO

#: 18 decimals: the index tokens' smallest unit.
TOKEN_UNIT = Decimal("1e-18")


@dataclass(slots=True)
class IndexTokens:
    """One index's tokens of one user."""

    credited: Decimal = ZERO
    available: Decimal = ZERO
    reserved: Decimal = ZERO  # held by open sell orders
    redeemed: Decimal = ZERO  # sold and burnt
    reversed: Decimal = ZERO  # taken back by reorgs
    debt: Decimal = ZERO

    def check(self) -> bool:
        return self.credited + self.debt == self.available + self.reserved + self.redeemed + self.reversed


@dataclass(slots=True)
class TokenReversal:
    deposit_key: str
    index: str
    units: Decimal
    debt: Decimal  # added by this reversal


@dataclass(slots=True)
class TokenLedger:
    """Not thread-safe: its owner (the user's order-book shard) serialises the calls."""

    unit: Decimal = TOKEN_UNIT
    indexes: dict[str, IndexTokens] = field(default_factory=dict)
    deposits: dict[str, tuple[str, Decimal]] = field(default_factory=dict)  # key -> (index, units)
    reversals: dict[str, Decimal] = field(default_factory=dict)  # key -> units taken back

    def of(self, index: str) -> IndexTokens:
        return self.indexes.get(index) or IndexTokens()

    def _book(self, index: str) -> IndexTokens:
        return self.indexes.setdefault(index, IndexTokens())

    def credit(self, deposit: TokenDeposit) -> bool:
        """Book a confirmed deposit. False (nothing changes) when its key was booked before with the same numbers;
        a replay with other numbers is refused."""
        units = whole_units(deposit.units, self.unit, f"token deposit {deposit.key}")
        seen = self.deposits.get(deposit.key)
        if seen is not None:
            if seen != (deposit.index, units):
                raise CollateralError(f"token deposit {deposit.key} replayed as {deposit.index} {units}, booked "
                                      f"before as {seen[0]} {seen[1]}")
            return False
        self.deposits[deposit.key] = (deposit.index, units)
        book = self._book(deposit.index)
        book.credited += units
        paid = min(book.debt, units)  # tokens back in the user's hands pay an open debt first
        book.debt -= paid
        book.available += units - paid
        return True

    def reserve(self, index: str, units: Decimal) -> None:
        """A sell order's units (at most the available ones; none while the index is in debt)."""
        book = self._book(index)
        units = whole_units(units, self.unit, f"sell of {index}")
        if book.debt > 0 or units > book.available:
            raise InsufficientCollateral(f"{index}: {units} to sell, {book.available} available, debt {book.debt}")
        book.available -= units
        book.reserved += units

    def release(self, index: str, units: Decimal) -> None:
        """Reserved units a sell no longer needs (cancelled, or not sold): available again."""
        self._book(index).available += self._from_reserved(index, units, "release")

    def redeem(self, index: str, units: Decimal) -> None:
        """Reserved units sold and burnt."""
        self._book(index).redeemed += self._from_reserved(index, units, "redeem")

    def _from_reserved(self, index: str, units: Decimal, what: str) -> Decimal:
        book = self._book(index)
        units = whole_units(units, self.unit, f"{what} of {index}", allow_zero=True)
        if units > book.reserved:
            raise CollateralError(f"{index}: {what} {units} of {book.reserved} reserved")
        book.reserved -= units
        return units

    def reverse(self, deposit_key: str) -> TokenReversal | None:
        """Take back a deposit a reorg dropped: from the available units (the caller cancels sells first when it
        wants their reservations used); the rest becomes debt. None when the key is unknown or already reversed."""
        seen = self.deposits.get(deposit_key)
        if seen is None or deposit_key in self.reversals:
            return None
        index, units = seen
        book = self._book(index)
        take = min(units, book.available)
        book.available -= take
        book.debt += units - take
        book.reversed += units
        self.reversals[deposit_key] = units
        return TokenReversal(deposit_key, index, units, units - take)

    def check(self) -> bool:
        return all(b.check() for b in self.indexes.values())

    def to_dict(self) -> dict[str, Any]:
        """Plain data (decimal strings in plain notation, never an exponent: 18 decimals would print as 1E-18):
        what the user's shard snapshot stores and the balance view shows."""
        def s(v: Decimal) -> str:
            return format(v, "f")
        return {"unit": s(self.unit),
                "indexes": {i: {k: s(v) for k, v in asdict(b).items()} for i, b in sorted(self.indexes.items())},
                "deposits": {k: [index, s(units)] for k, (index, units) in self.deposits.items()},
                "reversals": {k: s(v) for k, v in self.reversals.items()}}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TokenLedger":
        names = [f.name for f in fields(IndexTokens)]
        return cls(unit=Decimal(str(data["unit"])),
                   indexes={i: IndexTokens(**{k: Decimal(str(b[k])) for k in names})
                            for i, b in data["indexes"].items()},
                   deposits={k: (index, Decimal(str(units))) for k, (index, units) in data["deposits"].items()},
                   reversals={k: Decimal(str(v)) for k, v in data["reversals"].items()})
