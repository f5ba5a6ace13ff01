"""One retry policy for every loop that waits out the store (Redis) or a peer (a Ray actor, the exchange, a node).

redis-py's `Retry` with equal-jitter backoff: waits double from `base_ms` to `cap_ms`, each drawn in the upper half,
so shards restarted together do not retry in step. "Away" errors are waited out as long as it takes (a restart
ends); any other error is retried `max_failures` times, then raised (a bug does not go away by waiting).
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, TypeVar

import redis.asyncio.retry
import redis.retry
from redis.backoff import AbstractBackoff, EqualJitterBackoff
from redis.exceptions import ConnectionError as StoreConnectionError
from redis.exceptions import TimeoutError as StoreTimeoutError

T = TypeVar("T")
Errors = tuple[type[BaseException], ...]
#: Which errors mean "away": exception types, or a test of the error itself.
Away = Errors | Callable[[BaseException], bool]

#: Redis is down, restarting or still loading its data (BusyLoadingError is a ConnectionError).
STORE_AWAY: Errors = (StoreConnectionError, StoreTimeoutError)


def peer_away(error: BaseException) -> bool:
    """A Ray peer restarting (RayActorError) or not registered yet (ValueError from ray.get_actor). A ValueError
    raised by the peer's own method comes wrapped as a RayTaskError that is also a ValueError: that one is not."""
    import ray.exceptions  # here: the protocol client uses this module and does not need Ray

    if isinstance(error, ray.exceptions.RayActorError):
        return True
    return isinstance(error, ValueError) and not isinstance(error, ray.exceptions.RayError)


def _test(away: Away) -> Callable[[BaseException], bool]:
    if isinstance(away, tuple):
        return lambda error: isinstance(error, away)
    return away


@dataclass(frozen=True)
class RetryPolicy:
    #: The first nominal wait and the longest one (ms); each wait is drawn in [nominal / 2, nominal].
    base_ms: int
    cap_ms: int
    #: Failures of a kind that is not "away" that a bounded retry takes; the last one is raised.
    max_failures: int

    def __post_init__(self) -> None:
        if not 0 < self.base_ms <= self.cap_ms:
            raise ValueError(f"retry needs 0 < base_ms <= cap_ms (got {self.base_ms}, {self.cap_ms})")
        if self.max_failures < 1:
            raise ValueError(f"retry needs max_failures >= 1 (got {self.max_failures})")

    @classmethod
    def from_store(cls, store: Any) -> "RetryPolicy":
        """From core.config.StoreConfig (the `[store]` section)."""
        return cls(store.retry_base_ms, store.retry_cap_ms, store.retry_max_failures)

    @classmethod
    def from_settings(cls, settings: Any) -> "RetryPolicy":
        return cls.from_store(settings.store)

    @classmethod
    def default(cls) -> "RetryPolicy":
        """The `[store]` defaults (options built without settings: tests, benches)."""
        from core.config import StoreConfig

        return cls.from_store(StoreConfig())

    # ------------------------------------------------------------------ redis-py's pieces
    def backoff(self) -> AbstractBackoff:
        # EqualJitterBackoff waits in [n/2, n] for n = min(cap, base * 2**failures); failures start at 1, so half
        # the base makes the first nominal wait base_ms.
        return EqualJitterBackoff(cap=self.cap_ms / 1000, base=self.base_ms / 2000)

    def delay_s(self, failures: int) -> float:
        """The wait after the `failures`-th failure in a row (1 for the first)."""
        return self.backoff().compute(failures)

    def _retries(self, bounded: bool) -> int:
        return self.max_failures - 1 if bounded else -1  # redis-py: retries after the first try; -1 forever

    def retry(self, errors: Errors = STORE_AWAY, *, bounded: bool = False) -> redis.asyncio.retry.Retry:
        """redis-py's async Retry over `errors`: forever, or (bounded) until the max_failures-th failure."""
        return redis.asyncio.retry.Retry(self.backoff(), self._retries(bounded), errors)

    def sync_retry(self, errors: Errors = STORE_AWAY, *, bounded: bool = False) -> redis.retry.Retry:
        """The same for synchronous code (the state read in an actor's __init__, which has nothing to serve yet)."""
        return redis.retry.Retry(self.backoff(), self._retries(bounded), errors)

    # ------------------------------------------------------------------ the common shape
    def _bounded(self, on_failure: Callable[[Any], None], away: Away) -> Callable[[Any], None]:
        """The failure handler: `on_failure` for each failure retried; the max_failures-th that is not `away` is
        raised instead."""
        is_away = _test(away)
        strikes = 0

        def failed(error: Any) -> None:
            nonlocal strikes
            if not is_away(error):
                strikes += 1
                if strikes >= self.max_failures:
                    raise error
            on_failure(error)

        return failed

    async def call(self, do: Callable[[], Awaitable[T]], on_failure: Callable[[Any], None], *,
                   away: Away = STORE_AWAY, bounded: Errors = ()) -> T:
        """`do()` until it returns: errors that are `away` are retried forever, the `bounded` ones max_failures
        times, any other is raised at once. `on_failure(error)` runs before each wait (it logs the warning)."""
        errors = (away if isinstance(away, tuple) else ()) + bounded
        failed = self._bounded(on_failure, away)

        async def handler(error: Any) -> None:  # redis-py's async Retry awaits its failure handler
            failed(error)

        return await self.retry(errors).call_with_retry(do, handler)

    def call_sync(self, do: Callable[[], T], on_failure: Callable[[Any], None], *, away: Away = STORE_AWAY,
                  bounded: Errors = ()) -> T:
        """`call` for synchronous code."""
        errors = (away if isinstance(away, tuple) else ()) + bounded
        return self.sync_retry(errors).call_with_retry(do, self._bounded(on_failure, away))

    def pacer(self, clock: Callable[[], float] = time.monotonic) -> "Pacer":
        return Pacer(self, clock)


class Pacer:
    """The waits of a loop that keeps running and fails now and then (a feed, a stream, a delivery): they grow
    while it keeps failing and start over after a success (`reset`) or once it has run a whole `cap_ms` since its
    last wait without failing (a connection that held that long was healthy)."""

    def __init__(self, policy: RetryPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self._backoff = policy.backoff()
        self._healthy_s = policy.cap_ms / 1000
        self._clock = clock
        self.failures = 0
        self._waited_until: float | None = None

    def reset(self) -> None:
        self.failures = 0
        self._waited_until = None

    def next_delay(self) -> float:
        """Count one failure; the wait (seconds) before the next attempt."""
        now = self._clock()
        if self._waited_until is not None and now - self._waited_until >= self._healthy_s:
            self.failures = 0
        self.failures += 1
        delay = self._backoff.compute(self.failures)
        self._waited_until = now + delay
        return delay

    async def pause(self) -> float:
        """Count one failure and wait it out; returns the wait."""
        delay = self.next_delay()
        await asyncio.sleep(delay)  # back-off while the store or peer is away, not synchronisation
        return delay
