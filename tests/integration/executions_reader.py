"""The sender's executions as its consumer reads them: the hand-off stream from its first entry (store/handoff.py).
Nothing acknowledges here, so the stream keeps every entry the sender committed."""
from __future__ import annotations

import time

import redis

from core.sender_messages import Execution
from store.sender_records import SenderExecutionRecord
from store.streams import sender_executions


class ExecutionsReader:
    def __init__(self, redis_url: str, account: str) -> None:
        self._redis = redis.Redis.from_url(redis_url)
        self._key = sender_executions(account).key

    def entries(self) -> list[Execution]:
        return [SenderExecutionRecord.load(fields[b"r"]).entry for _, fields in self._redis.xrange(self._key)]

    def dump(self) -> dict:
        return {"entries": self.entries(), "conflicts": 0}

    def wait_count(self, n: int, timeout_s: float) -> int:
        """Block on the stream (XREAD) until it holds `n` entries or the time is up; returns how many it holds."""
        deadline = time.monotonic() + timeout_s
        last = "0-0"
        count = 0
        while count < n and (left := deadline - time.monotonic()) > 0:
            got = self._redis.xread({self._key: last}, block=max(1, round(1000 * left)))
            for _, rows in got or []:
                count += len(rows)
                last = rows[-1][0]
        return count
