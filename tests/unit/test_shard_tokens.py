"""Index tokens sent back to custody, in the user's shard without Ray or Redis (core/shard_books.py's token side,
protocol/books_app.py's reports, store/shard_records.py's snapshot): credited once per deposit key per user and
index, a reorg's keys reversed once by the shard that credited them (from the available units, the rest owed),
the user told each, and the ledger back whole from its stored snapshot."""
from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

from core.chain_events import TokenDeposit
from core.clock import ManualClock
from core.shard_books import ShardBooks
from protocol.books_app import BooksApp
from protocol.envelope import UserRef
from protocol.indexmaker_app import TokenDepositReport
from protocol.indexmaker_messages import INDEXMAKER_REPORTS
from protocol.indexmaker_plugin import IndexMakerPlugin
from protocol.reason_codes import ReasonCode
from store.shard_records import ShardUser

INDEX, OTHER = "SY100", "SYAI"
A = "0xAaAaaAaaAaAaAaaAAAAaaaaaaAAaaaaAaAaAaAa1"
B = "0xbBbBBbBbBbbbbbBbBbBbbBbbBbbbbBbBBBbbbbB2"
KA, KB = A.lower(), B.lower()
BASE = 8453
FIXTURES = Path(__file__).parent.parent / "fixtures" / "records"


def books() -> ShardBooks:
    return ShardBooks({INDEX, OTHER}, clock=ManualClock(), unit=Decimal("0.000001"), max_open_orders=10,
                      token_decimals=18, order_dust=Decimal("0.05"), rest_return_ratio=Decimal("0.005"))


def deposit(n: int, user: str, units: str, index: str = INDEX, log_index: int = 0) -> TokenDeposit:
    return TokenDeposit(BASE, "0x" + f"{n:02x}" * 32, log_index, 100 + n, user, index, Decimal(units))


def parts(shard: ShardBooks, key: str, index: str = INDEX) -> tuple[Decimal, ...]:
    t = shard.tokens[key].of(index)
    return t.credited, t.available, t.reserved, t.redeemed, t.reversed, t.debt


def test_deposits_are_credited_per_user_and_index_once_per_key() -> None:
    shard = books()
    d1, d2, d3 = deposit(1, A, "0.01"), deposit(1, A, "0.002", OTHER, log_index=1), deposit(2, B, "0.5")
    step = shard.credit_tokens([d1, d2, d3])
    assert (step.errors, step.warnings, step.replays) == ([], [], 0)
    assert step.credited == [(KA, d1), (KA, d2), (KB, d3)]
    assert parts(shard, KA) == (Decimal("0.01"), Decimal("0.01"), 0, 0, 0, 0)
    assert shard.tokens[KA].of(OTHER).available == Decimal("0.002") and shard.tokens[KB].of(INDEX).available == \
        Decimal("0.5")
    assert {KA, KB} <= set(shard.books) and {KA, KB} <= shard.touched  # a user seen by tokens only has a book
    assert shard.books[KA].ledger.credited == 0  # nothing of it is USDC collateral
    shard.touched.clear()
    again = shard.credit_tokens([d1, d3])  # the listener hands the batch over again (a restart before its commit)
    assert (again.credited, again.replays, again.errors) == ([], 2, [])
    assert parts(shard, KA) == (Decimal("0.01"), Decimal("0.01"), 0, 0, 0, 0)
    assert shard.tokens[KB].of(INDEX).credited == Decimal("0.5") and shard.tokens[KA].check()


def test_a_bad_deposit_is_refused_with_a_reason_and_changes_nothing() -> None:
    shard = books()
    d1 = deposit(1, A, "0.01")
    shard.credit_tokens([d1])
    replayed_other = TokenDeposit(d1.chain_id, d1.tx_hash, d1.log_index, d1.block_number, A, INDEX, Decimal("0.02"))
    fraction = deposit(3, A, "1e-19")  # below the token's unit: no such transfer can exist
    step = shard.credit_tokens([replayed_other, fraction, deposit(4, A, "0.003")])
    assert [c[1].tx_hash for c in step.credited] == [deposit(4, A, "0").tx_hash]
    assert len(step.errors) == 2 and "replayed" in step.errors[0] and d1.key in step.errors[0]
    assert fraction.key in step.errors[1]
    assert parts(shard, KA) == (Decimal("0.013"), Decimal("0.013"), 0, 0, 0, 0)


def test_tokens_of_an_index_not_served_are_credited_with_a_warning() -> None:
    shard = books()
    step = shard.credit_tokens([deposit(1, A, "1", index="SYOLD")])
    assert len(step.credited) == 1 and len(step.warnings) == 1 and "SYOLD" in step.warnings[0]
    assert shard.tokens[KA].of("SYOLD").available == Decimal("1")


def test_a_reorg_reverses_a_deposit_once_in_the_shard_that_credited_it() -> None:
    shard = books()
    d1, d2, d3 = deposit(1, A, "0.01"), deposit(2, A, "0.004"), deposit(3, B, "0.5")
    shard.credit_tokens([d1, d2, d3])
    shard.touched.clear()
    # Keys of another shard's users, or never credited, are left out: every shard is asked.
    step = shard.reverse_tokens(["8453:0x" + "ee" * 32 + ":0", d2.key])
    assert [(k, r.deposit_key, r.units, r.debt) for k, r in step.reversed] == [(KA, d2.key, Decimal("0.004"), 0)]
    assert len(step.warnings) == 1 and d2.key in step.warnings[0] and shard.touched == {KA}
    assert parts(shard, KA) == (Decimal("0.014"), Decimal("0.01"), 0, 0, Decimal("0.004"), 0)
    again = shard.reverse_tokens([d2.key])
    assert (again.reversed, again.replays) == ([], 1)
    assert parts(shard, KA) == (Decimal("0.014"), Decimal("0.01"), 0, 0, Decimal("0.004"), 0)
    assert parts(shard, KB) == (Decimal("0.5"), Decimal("0.5"), 0, 0, 0, 0) and shard.tokens[KA].check()


def test_a_reversal_beyond_the_available_units_is_owed_and_a_new_deposit_pays_it_first() -> None:
    shard = books()
    d1 = deposit(1, A, "0.01")
    shard.credit_tokens([d1])
    ledger = shard.tokens[KA]
    ledger.reserve(INDEX, Decimal("0.006"))  # a sell holds part of it
    ledger.redeem(INDEX, Decimal("0.006"))  # ... sold and burnt before the reorg is seen
    step = shard.reverse_tokens([d1.key])
    [(key, r)] = step.reversed
    assert (key, r.units, r.debt) == (KA, Decimal("0.01"), Decimal("0.006"))
    assert len(step.warnings) == 1 and "0.006" in step.warnings[0]
    assert parts(shard, KA) == (Decimal("0.01"), 0, 0, Decimal("0.006"), Decimal("0.01"), Decimal("0.006"))
    shard.credit_tokens([deposit(2, A, "0.01")])
    assert parts(shard, KA)[1] == Decimal("0.004") and parts(shard, KA)[5] == 0 and ledger.check()


def test_the_user_is_told_each_credit_and_reversal_on_the_wire() -> None:
    shard = books()
    app = BooksApp(shard, default_chain_id=42161)
    app.refs[KA] = UserRef(42161, A)  # the user's session
    d1, d2 = deposit(1, A, "0.01"), deposit(2, A, "0.002")
    credited = app.token_reports(shard.credit_tokens([d1, d2]))
    assert credited == [TokenDepositReport(UserRef(42161, A), d1.key, INDEX, "credited", Decimal("0.01"),
                                           Decimal("0.012"), Decimal(0), None, shard.clock.now_ms()),
                        TokenDepositReport(UserRef(42161, A), d2.key, INDEX, "credited", Decimal("0.002"),
                                           Decimal("0.012"), Decimal(0), None, shard.clock.now_ms())]
    [reversed_] = app.token_reports(shard.reverse_tokens([d1.key]))
    assert (reversed_.status, reversed_.units, reversed_.available, reversed_.code) == (
        "reversed", Decimal("0.01"), Decimal("0.002"), ReasonCode.DEPOSIT_REVERSED)
    wire = [IndexMakerPlugin.to_wire(r) for r in credited + [reversed_]]
    assert [(w.MSG_TYPE, w.status, w.reason_code) for w in wire] == [
        ("TokenDeposit", "credited", None), ("TokenDeposit", "credited", None),
        ("TokenDeposit", "reversed", ReasonCode.DEPOSIT_REVERSED)]
    assert wire[2].reason is not None and d1.key in wire[2].reason
    for body in wire:  # what a client decodes: the same message back
        data = body.model_dump(mode="json", exclude_none=True)
        assert INDEXMAKER_REPORTS["TokenDeposit"].model_validate(data) == body
        assert data["quantity"] in ("0.01", "0.002") and data["symbol"] == INDEX


def test_the_ledger_comes_back_whole_from_the_users_snapshot_and_reverses_after_a_restart() -> None:
    shard = books()
    d1, d2 = deposit(1, A, "0.01"), deposit(2, A, "0.02", OTHER)
    shard.credit_tokens([d1, d2])
    shard.tokens[KA].reserve(INDEX, Decimal("0.004"))
    raw = ShardUser.of(UserRef(42161, A), shard.books[KA], {}, shard.tokens[KA]).dump()
    back = ShardUser.load(raw).token_ledger()
    assert back == shard.tokens[KA]
    restarted = books()
    restarted.load_tokens(KA, back)
    assert restarted.credit_tokens([d1]).replays == 1  # restart-safe: a re-read batch books nothing
    [(key, r)] = restarted.reverse_tokens([d2.key]).reversed
    assert (key, r.index, r.units) == (KA, OTHER, Decimal("0.02"))
    assert parts(restarted, KA) == (Decimal("0.01"), Decimal("0.006"), Decimal("0.004"), 0, 0, 0)


def test_a_version_1_user_snapshot_loads_with_no_tokens() -> None:
    v1 = json.loads((FIXTURES / "shard.user.v1.json").read_text())
    user = ShardUser.load(json.dumps(v1))
    assert user.tokens is None and user.token_ledger() is None
    assert user.book.ledger.credited == Decimal("100")  # the rest as it was
