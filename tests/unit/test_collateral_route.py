"""The collateral route state machine, batching and gas conversion: pure, exact to the micro-USDC."""
from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.collateral_ledger import CollateralLedger
from core.collateral_route import CollateralRoute, RouteError, RouteStage
from core.gas_cost import gas_cost_in_collateral
from core.route_batch import BatchPolicy, RouteMember, take_batch

U = Decimal("0.000001")
ARB, BASE = 42161, 8453


def member(i: int, amount: str, seen_ms: int = 0, user: str | None = None) -> RouteMember:
    return RouteMember(f"{ARB}:0x{i:064x}:0", user or f"0xuser{i}", Decimal(amount), seen_ms)


def walk(route: CollateralRoute, *, output: str, gas_bridge: str, gas_transfer: str, credited: str | None = None):
    route.bridge_sent(tx_hash="0xb", deposit_id=7, input_amount=route.total, output_amount=Decimal(output),
                      gas=Decimal(gas_bridge), now_ms=1)
    route.bridge_filled(tx_hash="0xf", amount_received=Decimal(output), now_ms=2)
    route.transferred(tx_hash="0xt", address="0xexchange", amount=route.amount_held, gas=Decimal(gas_transfer),
                      now_ms=3)
    route.credited(amount_credited=Decimal(credited or output), now_ms=4)


def test_single_deposit_route_books_every_hop_cost_to_the_unit():
    route = CollateralRoute.open("r-1", [member(1, "100")], origin_chain_id=ARB, destination_chain_id=BASE,
                                 unit=U, now_ms=0)
    assert route.stage is RouteStage.CUSTODY
    walk(route, output="99.900000", gas_bridge="0.587286", gas_transfer="0.139908")
    assert route.stage is RouteStage.CREDITED
    assert [h.hop for h in route.hops] == ["across:42161->8453", "transfer:8453->exchange", "credit:exchange"]
    # bridge fee 0.1 + both gas costs; nothing lost at the exchange
    assert route.fee == Decimal("0.1") + Decimal("0.587286") + Decimal("0.139908")
    charges = route.charges()
    assert sum(c.amount for c in charges) == route.fee
    assert {c.hop for c in charges} == {"across:42161->8453", "transfer:8453->exchange"}  # the credit hop cost 0
    assert route.net_amounts() == {route.members[0].deposit_key: Decimal("100") - route.fee}


def test_batched_route_splits_each_hop_exactly_and_in_proportion():
    members = [member(1, "1000"), member(2, "250"), member(3, "0.000003")]
    route = CollateralRoute.open("r-2", members, origin_chain_id=ARB, destination_chain_id=BASE, unit=U, now_ms=0)
    walk(route, output="1248.750003", gas_bridge="0.700001", gas_transfer="0.100000")
    charges = route.charges()
    for hop in route.hops:
        shares = [c.amount for c in charges if c.hop == hop.hop]
        assert sum(shares) == hop.fee
    per_member = {m.deposit_key: sum(c.amount for c in charges if c.deposit_key == m.deposit_key)
                  for m in members}
    total_fee = route.fee
    for m in members:  # each member within one unit per hop of its exact proportional share
        exact = total_fee * m.amount / route.total
        assert abs(per_member[m.deposit_key] - exact) <= U * len(route.hops)
    assert len({c.fee_id for c in charges}) == len(charges)


def test_charges_are_booked_once_in_the_ledger_even_when_replayed():
    route = CollateralRoute.open("r-3", [member(1, "50", user="0xa"), member(2, "150", user="0xb")],
                                 origin_chain_id=ARB, destination_chain_id=BASE, unit=U, now_ms=0)
    walk(route, output="199.800000", gas_bridge="0.3", gas_transfer="0.1")
    ledgers = {"0xa": CollateralLedger(U), "0xb": CollateralLedger(U)}
    for m in route.members:
        ledgers[m.user].credit(m.deposit_key, m.amount)
    for _ in range(2):  # a restart replays every charge
        for c in route.uncharged():
            ledgers[c.user].charge_fee(c.fee_id, c.amount)
    assert ledgers["0xa"].fees_charged + ledgers["0xb"].fees_charged == route.fee
    route.mark_charged([c.fee_id for c in route.charges()])
    assert route.uncharged() == []
    for ledger in ledgers.values():
        ledger.check()
    assert ledgers["0xa"].available == route.net_amounts()[route.members[0].deposit_key]


def test_transitions_out_of_order_or_with_wrong_numbers_are_refused():
    route = CollateralRoute.open("r-4", [member(1, "10")], origin_chain_id=ARB, destination_chain_id=BASE,
                                 unit=U, now_ms=0)
    with pytest.raises(RouteError):
        route.bridge_filled(tx_hash="0xf", amount_received=Decimal("9"), now_ms=1)
    with pytest.raises(RouteError):  # must bridge exactly what the deposits hold
        route.bridge_sent(tx_hash="0xb", deposit_id=1, input_amount=Decimal("9"), output_amount=Decimal("8"),
                          gas=Decimal(0), now_ms=1)
    with pytest.raises(RouteError):  # not a whole micro-USDC
        route.bridge_sent(tx_hash="0xb", deposit_id=1, input_amount=Decimal("10"),
                          output_amount=Decimal("9.0000001"), gas=Decimal(0), now_ms=1)
    route.bridge_sent(tx_hash="0xb", deposit_id=1, input_amount=Decimal("10"), output_amount=Decimal("9.99"),
                      gas=Decimal("0.01"), now_ms=1)
    with pytest.raises(RouteError):  # the relayer cannot hand out more than went in
        route.bridge_filled(tx_hash="0xf", amount_received=Decimal("10.5"), now_ms=2)
    route.bridge_filled(tx_hash="0xf", amount_received=Decimal("9.99"), now_ms=2)
    with pytest.raises(RouteError):  # the whole amount held moves on, not part of it
        route.transferred(tx_hash="0xt", address="0xe", amount=Decimal("9"), gas=Decimal(0), now_ms=3)
    route.fail("exchange unreachable", now_ms=4)
    assert route.stage is RouteStage.FAILED and route.failure.startswith("on_destination")
    with pytest.raises(RouteError):
        route.fail("again", now_ms=5)


def test_deposit_on_the_destination_chain_takes_the_short_route():
    route = CollateralRoute.open("r-5", [RouteMember(f"{BASE}:0x1:0", "0xu", Decimal("20"), 0)],
                                 origin_chain_id=BASE, destination_chain_id=BASE, unit=U, now_ms=0)
    assert route.stage is RouteStage.ON_DESTINATION
    route.transferred(tx_hash="0xt", address="0xe", amount=Decimal("20"), gas=Decimal("0.05"), now_ms=1)
    route.credited(amount_credited=Decimal("20"), now_ms=2)
    assert route.fee == Decimal("0.05")


def test_open_refuses_duplicates_and_fractions():
    with pytest.raises(RouteError):
        CollateralRoute.open("r", [member(1, "1"), member(1, "2")], origin_chain_id=ARB,
                             destination_chain_id=BASE, unit=U, now_ms=0)
    with pytest.raises(RouteError):
        CollateralRoute.open("r", [member(1, "1.0000005")], origin_chain_id=ARB, destination_chain_id=BASE,
                             unit=U, now_ms=0)
    with pytest.raises(RouteError):
        CollateralRoute.open("r", [], origin_chain_id=ARB, destination_chain_id=BASE, unit=U, now_ms=0)


micro = st.integers(1, 10**12).map(lambda n: Decimal(n) * U)


@settings(max_examples=150, deadline=None)
@given(st.lists(micro, min_size=1, max_size=12), st.integers(0, 10**9), st.integers(0, 10**7),
       st.integers(0, 10**7), st.integers(0, 10**6), st.sampled_from(["credited", "to_exchange", "bridging"]))
def test_any_route_round_trips_and_its_charges_add_up(amounts, fee_units, gas1, gas2, loss_units, stop):
    members = [member(i, str(a), seen_ms=i) for i, a in enumerate(amounts)]
    route = CollateralRoute.open("r-h", members, origin_chain_id=ARB, destination_chain_id=BASE, unit=U,
                                 now_ms=0)
    total = route.total
    output = max(total - Decimal(fee_units) * U, Decimal(0))
    route.bridge_sent(tx_hash="0xb", deposit_id=1, input_amount=total, output_amount=output,
                      gas=Decimal(gas1) * U, now_ms=1)
    if stop != "bridging":
        route.bridge_filled(tx_hash="0xf", amount_received=output, now_ms=2)
        route.transferred(tx_hash="0xt", address="0xe", amount=output, gas=Decimal(gas2) * U, now_ms=3)
        if stop == "credited":
            route.credited(amount_credited=max(output - Decimal(loss_units) * U, Decimal(0)), now_ms=4)
    again = CollateralRoute.from_dict(route.to_dict())
    assert again.to_dict() == route.to_dict()
    charges = route.charges()
    assert sum((c.amount for c in charges), Decimal(0)) == route.fee
    assert all(c.amount > 0 and c.amount % U == 0 for c in charges)
    net = route.net_amounts()
    assert sum(net.values()) == total - route.fee


def test_batch_policy_closes_on_count_amount_or_age():
    pending = [member(i, "10", seen_ms=1000 + i) for i in range(5)]
    assert take_batch([], BatchPolicy(), 0) is None
    assert take_batch(pending, BatchPolicy(max_deposits=1), 0) == pending[:1]  # no batching: oldest alone, now
    assert take_batch(pending, BatchPolicy(max_deposits=3, max_wait_ms=10**9), 1000) == pending[:3]
    assert take_batch(pending, BatchPolicy(max_deposits=10, close_amount=Decimal("25"), max_wait_ms=10**9),
                      1000) == pending[:3]
    wait = BatchPolicy(max_deposits=10, max_wait_ms=500)
    assert take_batch(pending, wait, 1499) is None  # the oldest has waited 499 ms
    assert take_batch(list(reversed(pending)), wait, 1500) == pending  # all of them, oldest first


def test_gas_cost_is_exact_and_rounded_up_to_the_unit():
    # 97,881 gas at 2 gwei = 0.000195762 ETH; at 3000 USDC/ETH = 0.587286 USDC exactly
    assert gas_cost_in_collateral(97_881, 2_000_000_000, Decimal("3000"), U) == Decimal("0.587286")
    # 21,000 gas at 1 wei is 2.1e-14 ETH: far below a micro-USDC, still charged as one unit (never zero)
    assert gas_cost_in_collateral(21_000, 1, Decimal("3000"), U) == U
    assert gas_cost_in_collateral(0, 10**9, Decimal("3000"), U) == 0
    with pytest.raises(ValueError):
        gas_cost_in_collateral(-1, 1, Decimal("1"), U)
