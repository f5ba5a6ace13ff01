"""Group commit: every session's store writes go through one queue and reach the store in batches.

Why: an ACK may be sent only once the request is stored, and one store round trip per message would cap the
gateway at ~1/latency messages per second and cost a command each. Here a write waits at most for the batch in
flight; everything that queued meanwhile goes in the next batch, as one command (one fsync on Redis). Callbacks run
strictly in submission order once their batch is durable, so a user's stream is delivered in seq order.

A failed batch is retried (the store is idempotent) under the store's retry policy; while the store is down the
queue grows, and the server refuses new requests with SERVER_BUSY once `pending` passes its limit.
"""
from __future__ import annotations

import asyncio
import logging
from collections import deque
from typing import Callable

from protocol.report_store import ReportStore, StreamWrite
from store.retry import RetryPolicy

log = logging.getLogger(__name__)

Callback = Callable[[], None]


class GroupCommitter:
    def __init__(self, store: ReportStore, *, max_batch: int = 2000, write_timeout_s: float = 5.0,
                 retry: RetryPolicy | None = None) -> None:
        self._store = store
        self._max_batch = max_batch
        self._write_timeout_s = write_timeout_s
        self._pacer = (retry or RetryPolicy.default()).pacer()
        self._queue: deque[tuple[StreamWrite, Callback | None]] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self.batches = 0
        self.writes = 0
        self.failures = 0
        self.write_seconds = 0.0  # time spent waiting for the store (all batches)
        self.max_write_seconds = 0.0

    @property
    def pending(self) -> int:
        return len(self._queue)

    def submit(self, write: StreamWrite, on_durable: Callback | None = None) -> None:
        """Queue one write; `on_durable` runs (in the event loop) once it is stored."""
        self._queue.append((write, on_durable))
        self._idle.clear()
        self._wake.set()

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name="group-commit")

    async def flush(self) -> None:
        """Wait until everything submitted so far is stored and its callbacks have run."""
        await self._idle.wait()

    async def stop(self, timeout_s: float = 10.0) -> None:
        """Write what is queued (waiting at most `timeout_s` for a store that does not answer), then stop."""
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self.flush(), timeout_s)
        except asyncio.TimeoutError:
            log.error("group commit: stopping with %d writes not stored (the store did not answer)", self.pending)
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._task = None

    async def _run(self) -> None:
        queue = self._queue
        while True:
            if not queue:
                self._idle.set()
                self._wake.clear()
                await self._wake.wait()
                continue
            n = min(len(queue), self._max_batch)
            batch = [queue.popleft() for _ in range(n)]
            await self._write([w for w, _ in batch])
            for _, callback in batch:
                if callback is not None:
                    try:
                        callback()
                    except Exception:  # a delivery bug must not stop the commits of everyone else
                        log.exception("group commit: callback failed")

    async def _write(self, writes: list[StreamWrite]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                # asyncio.timeout, not wait_for: wait_for wraps the call in a task of its own, once per batch
                async with asyncio.timeout(self._write_timeout_s):
                    await self._store.append(writes)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # TimeoutError included
                self.failures += 1
                delay = self._pacer.next_delay()
                log.warning("group commit: batch of %d failed (%s); retrying in %.3f s", len(writes), exc, delay)
                await asyncio.sleep(delay)  # back-off before retrying a store that failed, not synchronisation
                continue
            self._pacer.reset()
            took = loop.time() - started
            self.write_seconds += took
            self.max_write_seconds = max(self.max_write_seconds, took)
            self.batches += 1
            self.writes += len(writes)
            return
