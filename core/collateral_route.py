"""One route of collateral, as a state machine over plain data:

    CUSTODY -> BRIDGING -> ON_DESTINATION -> AT_EXCHANGE -> CREDITED; any non-final stage -> FAILED

A deposit on the destination chain starts at ON_DESTINATION. Pure so that the rules (what may follow what, each
hop's cost, who pays which share) are testable without a chain; the router persists it before every step.
`charges()` splits each hop's cost exactly; a fee id names (route, hop, deposit): no double charge."""
from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any, Sequence

from core.fees import HopCost, route_fee, split_cost
from core.money import ZERO, D, is_multiple
from core.route_batch import RouteMember


class RouteStage(StrEnum):
    CUSTODY = "custody"
    BRIDGING = "bridging"
    ON_DESTINATION = "on_destination"
    AT_EXCHANGE = "at_exchange"
    CREDITED = "credited"
    FAILED = "failed"


FINAL_STAGES = frozenset({RouteStage.CREDITED, RouteStage.FAILED})


class RouteError(ValueError):
    """A transition that does not fit the route's stage or numbers."""


@dataclass(frozen=True, slots=True)
class FeeCharge:
    """One member's share of one hop's cost: what the collateral ledger charges (idempotent by fee_id)."""

    fee_id: str
    user: str
    deposit_key: str
    hop: str
    amount: Decimal


@dataclass(slots=True)
class CollateralRoute:
    route_id: str
    origin_chain_id: int
    destination_chain_id: int
    members: tuple[RouteMember, ...]
    unit: Decimal
    stage: RouteStage
    created_ms: int
    updated_ms: int
    hops: list[HopCost] = field(default_factory=list)
    #: Facts per step, as plain data: tx hashes, deposit id, blocks, addresses (for inspection and restart).
    bridge: dict[str, Any] | None = None
    fill: dict[str, Any] | None = None
    transfer: dict[str, Any] | None = None
    credit: dict[str, Any] | None = None
    failure: str | None = None
    charged: list[str] = field(default_factory=list)  # fee ids already booked in the ledger

    # --- creation ---------------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, route_id: str, members: Sequence[RouteMember], *, origin_chain_id: int,
             destination_chain_id: int, unit: Decimal, now_ms: int) -> "CollateralRoute":
        if not members:
            raise RouteError(f"route {route_id}: no deposits")
        keys = [m.deposit_key for m in members]
        if len(set(keys)) != len(keys):
            raise RouteError(f"route {route_id}: a deposit appears twice")
        for m in members:
            if m.amount <= 0 or not is_multiple(m.amount, unit):
                raise RouteError(f"route {route_id}: deposit {m.deposit_key} amount {m.amount} is not a positive "
                                 f"whole number of {unit}")
        direct = origin_chain_id == destination_chain_id
        return cls(route_id, origin_chain_id, destination_chain_id, tuple(members), unit,
                   RouteStage.ON_DESTINATION if direct else RouteStage.CUSTODY, now_ms, now_ms)

    # --- amounts ----------------------------------------------------------------------------------------------------

    @property
    def total(self) -> Decimal:
        return sum((m.amount for m in self.members), ZERO)

    @property
    def amount_held(self) -> Decimal:
        """What the route carries now: the total until a hop changes it, then the last hop's output."""
        return self.hops[-1].amount_out if self.hops else self.total

    @property
    def fee(self) -> Decimal:
        return route_fee(self.hops)

    @property
    def is_final(self) -> bool:
        return self.stage in FINAL_STAGES

    # --- transitions ------------------------------------------------------------------------------------------------

    def _expect(self, stage: RouteStage, what: str) -> None:
        if self.stage != stage:
            raise RouteError(f"route {self.route_id}: {what} needs stage {stage.value}, route is {self.stage.value}")

    def _money(self, value: Decimal, what: str) -> Decimal:
        value = D(value)
        if value < 0 or not is_multiple(value, self.unit):
            raise RouteError(f"route {self.route_id}: {what} {value} is not a whole number of {self.unit} >= 0")
        return value

    def bridge_sent(self, *, tx_hash: str, deposit_id: int, input_amount: Decimal, output_amount: Decimal,
                    gas: Decimal, now_ms: int, **facts: Any) -> None:
        """Our Across deposit is mined. Its cost is booked when the fill shows what really arrived."""
        self._expect(RouteStage.CUSTODY, "bridge_sent")
        input_amount = self._money(input_amount, "bridge input")
        if input_amount != self.total:
            raise RouteError(f"route {self.route_id}: bridged {input_amount}, but the deposits total {self.total}")
        output_amount = self._money(output_amount, "bridge output")
        if output_amount > input_amount:
            raise RouteError(f"route {self.route_id}: bridge output {output_amount} exceeds its input")
        self.bridge = {"tx_hash": tx_hash, "deposit_id": deposit_id, "input_amount": str(input_amount),
                       "output_amount": str(output_amount), "gas": str(self._money(gas, "bridge gas")), **facts}
        self.stage = RouteStage.BRIDGING
        self.updated_ms = now_ms

    def bridge_filled(self, *, tx_hash: str, amount_received: Decimal, now_ms: int, **facts: Any) -> HopCost:
        """The relayer's fill reached our destination wallet: the Across hop is done, with its real cost."""
        self._expect(RouteStage.BRIDGING, "bridge_filled")
        assert self.bridge is not None
        received = self._money(amount_received, "amount received")
        input_amount = D(self.bridge["input_amount"])
        if received > input_amount:
            raise RouteError(f"route {self.route_id}: received {received} from a bridge input of {input_amount}")
        hop = HopCost(f"across:{self.origin_chain_id}->{self.destination_chain_id}", input_amount, received,
                      gas=D(self.bridge["gas"]))
        self.fill = {"tx_hash": tx_hash, "amount_received": str(received), **facts}
        self.hops.append(hop)
        self.stage = RouteStage.ON_DESTINATION
        self.updated_ms = now_ms
        return hop

    def transferred(self, *, tx_hash: str, address: str, amount: Decimal, gas: Decimal, now_ms: int,
                    **facts: Any) -> HopCost:
        """Everything the route holds went to the exchange deposit address in one transfer."""
        self._expect(RouteStage.ON_DESTINATION, "transferred")
        amount = self._money(amount, "transfer amount")
        if amount != self.amount_held:
            raise RouteError(f"route {self.route_id}: transferred {amount}, but the route holds {self.amount_held}")
        hop = HopCost(f"transfer:{self.destination_chain_id}->exchange", amount, amount,
                      gas=self._money(gas, "transfer gas"))
        self.transfer = {"tx_hash": tx_hash, "address": address, "amount": str(amount), **facts}
        self.hops.append(hop)
        self.stage = RouteStage.AT_EXCHANGE
        self.updated_ms = now_ms
        return hop

    def credited(self, *, amount_credited: Decimal, now_ms: int, **facts: Any) -> HopCost:
        """The exchange credited the deposit. If it credited less than we sent, the difference is this hop's cost."""
        self._expect(RouteStage.AT_EXCHANGE, "credited")
        credited = self._money(amount_credited, "amount credited")
        if credited > self.amount_held:
            raise RouteError(f"route {self.route_id}: exchange credited {credited}, more than the "
                             f"{self.amount_held} sent")
        hop = HopCost("credit:exchange", self.amount_held, credited)
        self.credit = {"amount_credited": str(credited), **facts}
        self.hops.append(hop)
        self.stage = RouteStage.CREDITED
        self.updated_ms = now_ms
        return hop

    def fail(self, reason: str, *, now_ms: int) -> None:
        if self.is_final:
            raise RouteError(f"route {self.route_id}: already {self.stage.value}")
        self.failure = f"{self.stage.value}: {reason}"
        self.stage = RouteStage.FAILED
        self.updated_ms = now_ms

    # --- who pays what ----------------------------------------------------------------------------------------------

    def charges(self) -> list[FeeCharge]:
        """Every member's share of every completed hop (zero shares left out: there is nothing to book)."""
        out: list[FeeCharge] = []
        weights = [m.amount for m in self.members]
        for hop in self.hops:
            cost = hop.fee
            if cost < 0:
                raise RouteError(f"route {self.route_id}: hop {hop.hop} has a negative cost {cost}")
            if cost == 0:
                continue
            for member, share in zip(self.members, split_cost(cost, weights, self.unit)):
                if share > 0:
                    out.append(FeeCharge(f"{self.route_id}:{hop.hop}:{member.deposit_key}", member.user,
                                         member.deposit_key, hop.hop, share))
        return out

    def uncharged(self) -> list[FeeCharge]:
        done = set(self.charged)
        return [c for c in self.charges() if c.fee_id not in done]

    def mark_charged(self, fee_ids: Sequence[str]) -> None:
        known = {c.fee_id for c in self.charges()}
        for fee_id in fee_ids:
            if fee_id not in known:
                raise RouteError(f"route {self.route_id}: unknown fee id {fee_id}")
            if fee_id not in self.charged:
                self.charged.append(fee_id)

    def net_amounts(self) -> dict[str, Decimal]:
        """deposit key -> its amount minus its share of every completed hop: what the user keeps to trade with."""
        out = {m.deposit_key: m.amount for m in self.members}
        for charge in self.charges():
            out[charge.deposit_key] -= charge.amount
        return out

    # --- plain data -------------------------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "route_id": self.route_id, "origin_chain_id": self.origin_chain_id,
            "destination_chain_id": self.destination_chain_id, "members": [m.to_dict() for m in self.members],
            "unit": str(self.unit), "stage": self.stage.value, "created_ms": self.created_ms,
            "updated_ms": self.updated_ms,
            "hops": [{"hop": h.hop, "amount_in": str(h.amount_in), "amount_out": str(h.amount_out),
                      "gas": str(h.gas)} for h in self.hops],
            "bridge": self.bridge, "fill": self.fill, "transfer": self.transfer, "credit": self.credit,
            "failure": self.failure, "charged": list(self.charged),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CollateralRoute":
        return cls(
            route_id=data["route_id"], origin_chain_id=data["origin_chain_id"],
            destination_chain_id=data["destination_chain_id"],
            members=tuple(RouteMember.from_dict(m) for m in data["members"]), unit=D(data["unit"]),
            stage=RouteStage(data["stage"]), created_ms=data["created_ms"], updated_ms=data["updated_ms"],
            hops=[HopCost(h["hop"], D(h["amount_in"]), D(h["amount_out"]), D(h["gas"])) for h in data["hops"]],
            bridge=data["bridge"], fill=data["fill"], transfer=data["transfer"], credit=data["credit"],
            failure=data["failure"], charged=list(data["charged"]),
        )
