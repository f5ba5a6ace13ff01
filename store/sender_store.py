"""Where one account's order sender keeps its book in Redis: the keys, what a start reads, what a commit writes.

The actor decides when (its retry policy, its commit lock); this says how. A commit is one MULTI, so an order and
the log entries it made are durable together; the entries go to the executions hand-off the solver reads.
"""
from __future__ import annotations

from typing import Any

import redis

from core.sender_book import Changes, SenderBook
from store.sender_records import SenderBatchRecord, SenderExecutionRecord, SenderOrderRecord, SenderStateRecord
from store.streams import sender_executions


class SenderStore:
    def __init__(self, account: str) -> None:
        self.keys = {k: f"sender:{account}:{k}" for k in ("orders", "batches", "log", "state")}
        self.executions = sender_executions(account)

    def read(self, redis_url: str) -> tuple[Any, ...]:
        """Everything a start needs, as stored (`restore` makes sense of it); raises while the store is away."""
        r = redis.Redis.from_url(redis_url)
        try:
            return (r.hgetall(self.keys["orders"]), r.hgetall(self.keys["batches"]), r.hgetall(self.keys["log"]),
                    r.xrevrange(self.executions.key, count=1), r.get(self.keys["state"]))
        finally:
            r.close()

    @staticmethod
    def restore(raw: tuple[Any, ...], book: SenderBook) -> None:
        """Fill `book` and its breaker from what `read` returned. The log goes on from the highest seq any layout
        holds: the state's cursor, an older log hash, the hand-off's last entry."""
        orders, batches, log_rows, streamed, raw_state = raw
        stored = {cid.decode(): SenderOrderRecord.load(r) for cid, r in orders.items()}
        state = SenderStateRecord.load(raw_state or b"{}")  # none yet: the defaults
        # A log kept as a hash (seq -> entry) by older code: its entries go to the hand-off at the next commit.
        legacy = sorted((int(k), v) for k, v in log_rows.items())
        last = max([state.log_seq, legacy[-1][0] if legacy else 0]
                   + [int(streamed[0][0].split(b"-")[0]) for _ in streamed[:1]])
        book.breaker.load(state.breaker.model_dump())
        book.restore({cid: r.order for cid, r in stored.items()},
                     {cid: r.replaced_by for cid, r in stored.items() if r.replaced_by},
                     {b.decode(): SenderBatchRecord.load(r).results for b, r in batches.items()},
                     last, [SenderExecutionRecord.load(v).entry for _, v in legacy])

    def write(self, p: Any, book: SenderBook, changes: Changes) -> None:
        """Queue one commit on the MULTI pipeline `p`: the orders and batches it names, its log entries into the
        hand-off (an older log's first, then its hash is gone), the state if it moved."""
        if changes.orders:
            p.hset(self.keys["orders"], mapping={cid: SenderOrderRecord(
                order=book.orders[cid], replaced_by=book.replaced_by.get(cid), sent_at=book.sent_at.get(cid)).dump()
                for cid in changes.orders})
        if changes.batches:
            p.hset(self.keys["batches"], mapping={
                b: SenderBatchRecord.of(book.batches[b]).dump() for b in changes.batches})
        if changes.legacy:  # the consumer skips what its cursor already has
            for e in changes.legacy:
                self.executions.append(p, e.seq, SenderExecutionRecord.of(e).dump())
            p.delete(self.keys["log"])
        for e in changes.entries:
            self.executions.append(p, e.seq, SenderExecutionRecord.of(e).dump())
        if changes.writes_state:
            p.set(self.keys["state"], SenderStateRecord.model_validate({
                "log_seq": changes.log_seq, "breaker": book.breaker.to_dict()}).dump())
