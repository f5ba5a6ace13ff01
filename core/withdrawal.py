"""One user's withdrawal of USDC collateral to their address on Arbitrum, as a state machine over plain data:

    REQUESTED -> RESERVED -> APPLIED -> ON_BASE -> BRIDGING -> BRIDGED -> PAID
    REQUESTED -> REFUSED                          (the available collateral does not cover it: nothing held)
    RESERVED | APPLIED -> RELEASED                (the exchange rejected it: the hold goes back, whole)
    BRIDGING -> REFUNDED                          (the Across deposit expired, refunded to us on Base: the hold goes
                                                   back less the exchange's fee, which was really paid)

Every hop has its idempotency key: the exchange's withdrawOrderId and the Arbitrum transfer's effect key derive
from the withdrawal id; the bridge deposit is known by its id. `apply(event)` returns the transition, or None when
the event changes nothing (a duplicate, an event of a stage already passed, another hop's id): replaying any
events after a restart never holds, releases, spends or pays twice. The owner stores the machine (a versioned
record) before it carries out a transition's effects.

Money: the user asks for `amount` (micro-USDC), all of it leaves their collateral. Each fee is rounded UP to the
micro-USDC (the payer never pays a fraction the route did not bring) and the payout is what is left: amount less
the exchange's withdraw fee, the bridge's fee and the Arbitrum gas, exact."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum

from core.collateral_ledger import USDC_UNIT
from core.money import ZERO, quantize_up


class WithdrawalStage(StrEnum):
    REQUESTED = "requested"
    RESERVED = "reserved"
    APPLIED = "applied"
    ON_BASE = "on_base"
    BRIDGING = "bridging"
    BRIDGED = "bridged"
    PAID = "paid"
    REFUSED = "refused"
    RELEASED = "released"
    REFUNDED = "refunded"


FINAL = frozenset({WithdrawalStage.PAID, WithdrawalStage.REFUSED, WithdrawalStage.RELEASED,
                   WithdrawalStage.REFUNDED})


class WithdrawalError(ValueError):
    """A request that cannot start a withdrawal (its numbers or address)."""


@dataclass(frozen=True, slots=True)
class WithdrawalRequest:
    """What the user signed, as their shard accepted it (the amount held then): the withdrawal's facts before any
    hop. `client_id` is the user's id of it (unique per user); `withdrawal_id` the house's (unique overall)."""

    user: str  # the user's key (lower-cased address)
    client_id: str
    to: str  # the address paid on the destination chain
    chain_id: int  # the destination chain (Arbitrum)
    amount: Decimal  # USDC, fees included
    max_fee: Decimal | None  # the most the user accepts to pay in routing fees (None: whatever they are)
    accepted_ms: int

    @property
    def withdrawal_id(self) -> str:
        return withdrawal_id_of(self.user, self.client_id)


def withdrawal_id_of(user: str, client_id: str) -> str:
    """The house's id of a user's withdrawal: a digest of (user, client id), short enough that every hop's key built
    from it fits (the exchange's withdrawOrderId takes 36 characters), and the same after any restart."""
    return hashlib.sha256(f"{user.lower()}\n{client_id}".encode()).hexdigest()[:24]


# ------------------------------------------------------------------------------------------------ events
@dataclass(frozen=True, slots=True)
class Reserve:
    """The user's shard looked at the collateral free of any order (never engaged, held or reserved)."""

    available: Decimal


@dataclass(frozen=True, slots=True)
class ExchangeApplied:
    """The exchange accepted the apply (or the history shows it under our withdrawOrderId)."""

    exchange_id: str


@dataclass(frozen=True, slots=True)
class ExchangeCompleted:
    """The exchange's history says 6 (Completed): the USDC is in our Base wallet."""

    exchange_id: str
    tx_id: str


@dataclass(frozen=True, slots=True)
class ExchangeRejected:
    """Refused at apply (a wallet code) or later (history 1, 3 or 5): the exchange gave amount + fee back."""

    reason: str
    exchange_id: str | None = None


@dataclass(frozen=True, slots=True)
class BridgeDeposited:
    """Our Across deposit on Base: `output` is what it will deliver on Arbitrum."""

    deposit_id: str
    output: Decimal


@dataclass(frozen=True, slots=True)
class BridgeFilled:
    """A relayer filled the deposit on Arbitrum; `gas` is the USDC the Arbitrum transfer to the user will cost."""

    deposit_id: str
    gas: Decimal


@dataclass(frozen=True, slots=True)
class BridgeExpired:
    """The deposit was not filled before its deadline: Across refunds it to us on Base."""

    deposit_id: str


@dataclass(frozen=True, slots=True)
class Paid:
    """The transfer to the user on Arbitrum is mined (with the confirmations)."""

    tx_hash: str


Event = Reserve | ExchangeApplied | ExchangeCompleted | ExchangeRejected | BridgeDeposited | BridgeFilled | \
    BridgeExpired | Paid


# ------------------------------------------------------------------------------------------------ effects
@dataclass(frozen=True, slots=True)
class HoldCollateral:
    amount: Decimal


@dataclass(frozen=True, slots=True)
class ReleaseCollateral:
    """Back to the user's available collateral, out of the hold."""

    amount: Decimal


@dataclass(frozen=True, slots=True)
class SpendCollateral:
    """Out of the hold for good (paid out or paid as fees)."""

    amount: Decimal


@dataclass(frozen=True, slots=True)
class ApplyExchangeWithdraw:
    withdraw_order_id: str
    amount: Decimal  # what reaches our Base wallet; the exchange debits amount + its fee


@dataclass(frozen=True, slots=True)
class DepositToBridge:
    amount: Decimal


@dataclass(frozen=True, slots=True)
class PayOnArbitrum:
    effect_key: str
    to: str
    amount: Decimal


Effect = HoldCollateral | ReleaseCollateral | SpendCollateral | ApplyExchangeWithdraw | DepositToBridge | \
    PayOnArbitrum


@dataclass(frozen=True, slots=True)
class WithdrawalReport:
    """What the user is told at a stage: the stage, the amounts known so far, and the reason or the hash."""

    withdrawal_id: str
    stage: WithdrawalStage
    amount: Decimal
    fees: Decimal
    payout: Decimal | None = None
    reason: str | None = None
    tx_hash: str | None = None


@dataclass(frozen=True, slots=True)
class Transition:
    stage: WithdrawalStage
    effects: tuple[Effect, ...]
    report: WithdrawalReport


# ------------------------------------------------------------------------------------------------ the machine
@dataclass(slots=True)
class Withdrawal:
    withdrawal_id: str
    user: str
    to: str  # the user's address on Arbitrum
    amount: Decimal  # taken out of the user's collateral, fees included
    exchange_fee: Decimal  # the exchange's withdrawFee for USDC on Base when it was requested
    stage: WithdrawalStage = WithdrawalStage.REQUESTED
    held: Decimal = ZERO  # collateral held for it (what release and spend come out of)
    released: Decimal = ZERO
    spent: Decimal = ZERO
    exchange_id: str | None = None
    exchange_tx: str | None = None
    deposit_id: str | None = None
    bridge_fee: Decimal = ZERO
    gas_fee: Decimal = ZERO
    payout: Decimal | None = None
    paid_tx: str | None = None
    reason: str | None = None
    history: list[str] = field(default_factory=list)  # the stages it went through, in order

    @classmethod
    def request(cls, withdrawal_id: str, user: str, to: str, amount: Decimal, exchange_fee: Decimal,
                minimum: Decimal = ZERO) -> "Withdrawal":
        """A new withdrawal; refuses numbers it could never pay (the fee alone eats it, sub-micro amounts)."""
        if amount <= 0 or amount % USDC_UNIT != 0:
            raise WithdrawalError(f"amount {amount} is not a positive whole number of micro-USDC")
        fee = quantize_up(exchange_fee, USDC_UNIT)  # up: the exchange takes its fee whole
        if amount - fee < max(minimum, USDC_UNIT):
            raise WithdrawalError(f"amount {amount} does not cover the exchange fee {fee} and minimum {minimum}")
        return cls(withdrawal_id, user, to, amount, fee, history=[WithdrawalStage.REQUESTED.value])

    # -------------------------------------------------------------- keys and amounts
    @property
    def withdraw_order_id(self) -> str:
        """The exchange's idempotency key (Binance: at most 36 of [.A-Z:/a-z0-9_-])."""
        return f"wd-{self.withdrawal_id}"[:36]

    @property
    def payout_key(self) -> str:
        return f"withdraw:{self.withdrawal_id}"

    @property
    def on_base(self) -> Decimal:
        """What the exchange sends to our Base wallet (it debits `amount`: this plus its fee)."""
        return self.amount - self.exchange_fee

    @property
    def fees(self) -> Decimal:
        return self.exchange_fee + self.bridge_fee + self.gas_fee

    def report(self, reason: str | None = None) -> WithdrawalReport:
        return WithdrawalReport(self.withdrawal_id, self.stage, self.amount, self.fees if self.stage not in (
            WithdrawalStage.REFUSED, WithdrawalStage.RELEASED) else ZERO, self.payout, reason or self.reason,
            self.paid_tx)

    # -------------------------------------------------------------- transitions
    def _move(self, stage: WithdrawalStage, *effects: Effect, reason: str | None = None) -> Transition:
        for e in effects:
            if isinstance(e, HoldCollateral):
                self.held += e.amount
            elif isinstance(e, ReleaseCollateral):
                self.released += e.amount
            elif isinstance(e, SpendCollateral):
                self.spent += e.amount
        if self.released + self.spent > self.held:
            raise WithdrawalError(f"{self.withdrawal_id}: would give back or spend more than it held")
        self.stage = stage
        if reason is not None:
            self.reason = reason
        self.history.append(stage.value)
        return Transition(stage, effects, self.report())

    def _at(self, *stages: WithdrawalStage) -> bool:
        return self.stage in stages

    def apply(self, event: Event) -> Transition | None:
        """The transition `event` causes, or None when it changes nothing (see the module docstring)."""
        S = WithdrawalStage
        if self.stage in FINAL:
            return None
        if isinstance(event, Reserve):
            if not self._at(S.REQUESTED):
                return None
            if event.available < self.amount:
                return self._move(S.REFUSED, reason="INSUFFICIENT_AVAILABLE_COLLATERAL")
            return self._move(S.RESERVED, HoldCollateral(self.amount),
                              ApplyExchangeWithdraw(self.withdraw_order_id, self.on_base))
        if isinstance(event, ExchangeApplied):
            if not self._at(S.RESERVED):
                return None
            self.exchange_id = event.exchange_id
            return self._move(S.APPLIED)
        if isinstance(event, ExchangeCompleted):
            if not self._at(S.RESERVED, S.APPLIED) or not self._same_exchange(event.exchange_id):
                return None
            self.exchange_id, self.exchange_tx = event.exchange_id, event.tx_id
            return self._move(S.ON_BASE, DepositToBridge(self.on_base))
        if isinstance(event, ExchangeRejected):
            if not self._at(S.RESERVED, S.APPLIED) or not self._same_exchange(event.exchange_id):
                return None
            return self._move(S.RELEASED, ReleaseCollateral(self.held), reason=event.reason)
        if isinstance(event, BridgeDeposited):
            if not self._at(S.ON_BASE) or not (0 < event.output <= self.on_base):
                return None
            self.deposit_id = event.deposit_id
            self.bridge_fee = quantize_up(self.on_base - event.output, USDC_UNIT)
            return self._move(S.BRIDGING)
        if isinstance(event, BridgeFilled):
            if not self._at(S.BRIDGING) or event.deposit_id != self.deposit_id:
                return None
            self.gas_fee = quantize_up(max(event.gas, ZERO), USDC_UNIT)  # up: the gas is paid whole
            payout = self.amount - self.fees
            if payout <= 0:  # the gas ate it: nothing to send; the rest stays spent as fees
                self.payout = ZERO
                return self._move(S.PAID, SpendCollateral(self.held - self.spent), reason="FEES_EXCEED_AMOUNT")
            self.payout = payout
            return self._move(S.BRIDGED, PayOnArbitrum(self.payout_key, self.to, payout))
        if isinstance(event, BridgeExpired):
            if not self._at(S.BRIDGING) or event.deposit_id != self.deposit_id:
                return None
            self.bridge_fee = ZERO  # Across refunds the whole input
            return self._move(S.REFUNDED, SpendCollateral(self.exchange_fee),
                              ReleaseCollateral(self.held - self.exchange_fee), reason="BRIDGE_EXPIRED")
        if isinstance(event, Paid):
            if not self._at(S.BRIDGED):
                return None
            self.paid_tx = event.tx_hash
            return self._move(S.PAID, SpendCollateral(self.held - self.spent))
        raise TypeError(f"not a withdrawal event: {event!r}")

    def settlement(self) -> tuple[Decimal, dict[str, Decimal]]:
        """What a final withdrawal takes from the user's hold: (paid to the user, fee id -> fee). A refusal or a
        release takes nothing; a refund takes the exchange's fee; a payment its payout and each fee, the fees capped
        in route order at what the amount covers (the user never loses more than the amount). The rest of the hold
        goes back to the user."""
        S = WithdrawalStage
        if self.stage not in FINAL:
            raise WithdrawalError(f"{self.withdrawal_id} is {self.stage.value}, not settled yet")
        if self.stage in (S.REFUSED, S.RELEASED):
            return ZERO, {}
        paid = (self.payout or ZERO) if self.stage is S.PAID else ZERO
        fees = {"exchange": self.exchange_fee}
        if self.stage is S.PAID:
            fees |= {"bridge": self.bridge_fee, "gas": self.gas_fee}
        left = self.amount - paid
        charges: dict[str, Decimal] = {}
        for name, fee in fees.items():
            charges[f"{self.payout_key}:{name}"] = min(fee, left)
            left -= charges[f"{self.payout_key}:{name}"]
        return paid, {k: v for k, v in charges.items() if v > 0}

    def _same_exchange(self, exchange_id: str | None) -> bool:
        return exchange_id is None or self.exchange_id is None or exchange_id == self.exchange_id
