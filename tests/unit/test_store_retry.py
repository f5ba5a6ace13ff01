"""The one retry policy (store/retry.py): its waits double up to the cap within their jitter bounds, "away" errors
are waited out for as long as they last, other errors are given up on after max_failures, anything else is raised
at once; its numbers come from the [store] section and reach every options class built from settings."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import ray.exceptions
from redis.exceptions import BusyLoadingError, ConnectionError, ResponseError, TimeoutError

from actors.gateway import GatewayActorOptions
from actors.market_data import MarketDataOptions
from actors.order_books import OrderBooksOptions
from actors.order_sender import SenderOptions
from actors.solver import SolverOptions
from core.config import Settings, StoreConfig
from store.retry import STORE_AWAY, RetryPolicy, peer_away
from world.config_check import check

FAST = RetryPolicy(base_ms=1, cap_ms=4, max_failures=3)


def nominal_s(policy: RetryPolicy, failures: int) -> float:
    return min(policy.cap_ms, policy.base_ms * 2 ** (failures - 1)) / 1000


class Flaky:
    """Fails with the given errors in turn, then answers `value`; counts the calls."""

    def __init__(self, errors: list[BaseException], value: str = "done") -> None:
        self.errors = list(errors)
        self.value = value
        self.calls = 0

    def sync(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return self.value

    async def __call__(self) -> str:
        return self.sync()


# ------------------------------------------------------------------ the waits
def test_waits_double_from_the_base_to_the_cap_each_in_the_upper_half_of_its_nominal() -> None:
    policy = RetryPolicy(base_ms=200, cap_ms=2_000, max_failures=5)
    for failures in range(1, 12):
        n = nominal_s(policy, failures)
        waits = [policy.delay_s(failures) for _ in range(200)]
        assert all(n / 2 <= w <= n for w in waits), (failures, min(waits), max(waits))
    assert nominal_s(policy, 1) == 0.2 and nominal_s(policy, 4) == 1.6 and nominal_s(policy, 5) == 2.0
    assert max(policy.delay_s(40) for _ in range(200)) <= 2.0 < 2 * min(policy.delay_s(40) for _ in range(200))


def test_waits_are_jittered() -> None:
    policy = RetryPolicy(base_ms=200, cap_ms=2_000, max_failures=5)
    assert len({policy.delay_s(3) for _ in range(50)}) > 40  # shards restarted together do not retry in step


def test_a_policy_with_impossible_numbers_is_refused() -> None:
    with pytest.raises(ValueError, match="base_ms <= cap_ms"):
        RetryPolicy(base_ms=500, cap_ms=100, max_failures=1)
    with pytest.raises(ValueError, match="max_failures"):
        RetryPolicy(base_ms=1, cap_ms=1, max_failures=0)


# ------------------------------------------------------------------ redis-py's Retry, async and sync
def test_a_bounded_retry_raises_the_last_error_after_max_failures() -> None:
    do = Flaky([ConnectionError(f"down {i}") for i in range(10)])
    seen: list[str] = []

    async def fail(e: Exception) -> None:
        seen.append(str(e))

    with pytest.raises(ConnectionError, match="down 2"):
        asyncio.run(FAST.retry(bounded=True).call_with_retry(do, fail))
    assert do.calls == 3 and seen == ["down 0", "down 1", "down 2"]

    do = Flaky([TimeoutError(f"slow {i}") for i in range(10)])
    with pytest.raises(TimeoutError, match="slow 2"):
        FAST.sync_retry(bounded=True).call_with_retry(do.sync, lambda e: None)
    assert do.calls == 3


def test_an_unbounded_retry_keeps_going_while_the_store_is_away_and_returns_once_it_is_back() -> None:
    errors: list[BaseException] = [ConnectionError("refused"), TimeoutError("slow"), BusyLoadingError("loading")] * 7
    do = Flaky(errors, value="state")
    assert asyncio.run(FAST.retry().call_with_retry(do, _async_ignore)) == "state"
    assert do.calls == 22 > FAST.max_failures

    do = Flaky(list(errors), value="state")
    assert FAST.sync_retry().call_with_retry(do.sync, lambda e: None) == "state"
    assert do.calls == 22


def test_an_error_that_is_not_retried_is_raised_at_once() -> None:
    failures: list[Exception] = []
    do = Flaky([ResponseError("WRONGTYPE"), ConnectionError("never reached")])

    async def fail(e: Exception) -> None:
        failures.append(e)

    with pytest.raises(ResponseError):
        asyncio.run(FAST.retry().call_with_retry(do, fail))
    assert do.calls == 1 and failures == []
    do = Flaky([KeyError("bug")])
    with pytest.raises(KeyError):
        FAST.sync_retry().call_with_retry(do.sync, lambda e: None)
    assert do.calls == 1


async def _async_ignore(_: Exception) -> None:
    return None


# ------------------------------------------------------------------ away forever, others bounded
def test_call_waits_out_away_errors_and_gives_up_on_others_after_max_failures() -> None:
    # Away errors in between do not count towards the limit: only the third RuntimeError is raised.
    errors: list[BaseException] = [ConnectionError("a"), RuntimeError("1"), ConnectionError("b"), ConnectionError("c"),
                                   RuntimeError("2"), ConnectionError("d"), RuntimeError("3"), ConnectionError("e")]
    warned: list[str] = []
    do = Flaky(errors)
    with pytest.raises(RuntimeError, match="3"):
        asyncio.run(FAST.call(do, lambda e: warned.append(str(e)), bounded=(RuntimeError,)))
    assert do.calls == 7 and warned == ["a", "1", "b", "c", "2", "d"]  # the one given up on is raised, not warned


def test_call_returns_once_the_errors_clear_and_raises_the_unlisted_at_once() -> None:
    do = Flaky([ConnectionError("a"), RuntimeError("1"), RuntimeError("2"), TimeoutError("b")], value="ok")
    assert asyncio.run(FAST.call(do, lambda e: None, bounded=(RuntimeError,))) == "ok"
    assert do.calls == 5
    do = Flaky([ConnectionError("a"), ValueError("unlisted")])
    with pytest.raises(ValueError):
        asyncio.run(FAST.call(do, lambda e: None))
    assert do.calls == 2
    do = Flaky([ConnectionError("a")] * 9 + [RuntimeError("1")] * 2, value="ok")
    assert FAST.call_sync(do.sync, lambda e: None, bounded=(RuntimeError,)) == "ok"
    assert do.calls == 12


def test_call_with_an_away_test_retries_a_missing_peer_but_not_its_own_error() -> None:
    missing = ValueError("Failed to look up actor with name 'solver'")
    own = ray.exceptions.RayTaskError("on_fills", "traceback", ValueError("bad batch")).as_instanceof_cause()
    assert isinstance(own, ValueError)  # why the test has to look past the type
    do = Flaky([missing, ray.exceptions.RayActorError(), missing] * 3 + [own] * 3)
    with pytest.raises(ValueError) as raised:
        asyncio.run(FAST.call(do, lambda e: None, away=peer_away, bounded=(Exception,)))
    assert raised.value is own and do.calls == 12
    assert peer_away(missing) and peer_away(ray.exceptions.RayActorError())
    assert not peer_away(own) and not peer_away(RuntimeError("x"))


def test_store_away_covers_a_redis_still_loading_its_data() -> None:
    assert isinstance(BusyLoadingError("loading"), STORE_AWAY)
    assert not isinstance(ResponseError("WRONGTYPE"), STORE_AWAY)


# ------------------------------------------------------------------ the pacer of long-running loops
def test_a_pacer_grows_while_failing_and_starts_over_after_a_success_or_a_healthy_while() -> None:
    now = [100.0]
    policy = RetryPolicy(base_ms=100, cap_ms=800, max_failures=1)
    pacer = policy.pacer(clock=lambda: now[0])

    def fail() -> float:
        delay = pacer.next_delay()
        now[0] += delay
        return delay

    waits = [fail() for _ in range(6)]
    for i, w in enumerate(waits, start=1):
        assert nominal_s(policy, i) / 2 <= w <= nominal_s(policy, i)
    assert pacer.failures == 6 and waits[-1] >= 0.4
    now[0] += 0.5  # held for less than the cap: still the same run of failures
    assert fail() >= 0.4 and pacer.failures == 7
    now[0] += 0.9  # held longer than the cap since the last wait: healthy, the next failure starts over
    assert fail() <= 0.1 and pacer.failures == 1
    fail(), fail()
    pacer.reset()
    assert fail() <= 0.1 and pacer.failures == 1


def test_pause_waits_the_delay() -> None:
    async def scenario() -> tuple[float, float]:
        pacer = RetryPolicy(base_ms=40, cap_ms=40, max_failures=1).pacer()
        loop = asyncio.get_running_loop()
        began = loop.time()
        delay = await pacer.pause()
        return delay, loop.time() - began

    delay, took = asyncio.run(scenario())
    assert 0.02 <= delay <= 0.04 and took >= delay


# ------------------------------------------------------------------ its numbers: the [store] section
def test_the_store_section_numbers_reach_every_options_class(tmp_path: Path) -> None:
    path = tmp_path / "s.toml"
    path.write_text("[store]\nretry_base_ms = 50\nretry_cap_ms = 700\nretry_max_failures = 9\n"
                    "[market_data]\nreconnect_min_ms = 30\nreconnect_max_ms = 900\n")
    s = Settings.load(path)
    policy = RetryPolicy(50, 700, 9)
    assert RetryPolicy.from_settings(s) == policy
    assert SolverOptions.from_settings(s, 1).retry == policy
    assert OrderBooksOptions.from_settings(s, ("X",), 1).retry == policy
    assert SenderOptions.from_settings(s, "k", "secret").retry == policy
    reconnect = MarketDataOptions.from_settings(s).reconnect  # the same policy, with the feed's own numbers
    assert (reconnect.base_ms, reconnect.cap_ms) == (30, 900)


def test_defaults_keep_the_old_schedule_and_options_without_settings_take_them() -> None:
    default = RetryPolicy.default()
    assert default == RetryPolicy.from_store(StoreConfig()) == RetryPolicy(200, 2_000, 5)
    assert SolverOptions("redis://x", 1, 1).retry == default
    assert GatewayActorOptions("redis://x", 1, "00" * 32).retry == default


def test_config_check_names_the_retry_fields(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[store]\nretry_base_ms = 5000\n")
    (error,) = check(str(path)).errors
    assert "store.retry_base_ms" in error and "store.retry_cap_ms" in error
    path.write_text("[store]\nretry_max_failures = 0\nretry_cap_ms = 0\n")
    errors = check(str(path)).errors
    assert any(e.startswith("store.retry_max_failures:") for e in errors)
    assert any(e.startswith("store.retry_cap_ms:") for e in errors)
