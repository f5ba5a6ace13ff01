"""Where each user's streams live: the requests the server accepted and every stream message it sent (§10.3).

Sequence numbers belong to the user and survive restarts: a request and its ACK are stored before the ACK is sent,
each report before it is sent, and a Logon resends from here. The last stored numbers are the sequence state.
`append` takes a whole batch, atomic and idempotent. With `keep`, each stream holds its newest `keep` messages.
"""
from __future__ import annotations

import bisect
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Sequence


@dataclass(slots=True, frozen=True)
class StreamWrite:
    """One user's writes of one step: an accepted request and/or one outbound stream message."""

    user: str  # UserRef.key
    inbound: tuple[int, str] | None = None  # (client seq_num, the frame as received)
    outbound: tuple[int, str] | None = None  # (server seq_num, the frame as sent)


class ReportStore(ABC):
    @abstractmethod
    async def append(self, writes: Sequence[StreamWrite]) -> None:
        """Store all writes, atomically and idempotently."""

    @abstractmethod
    async def last_seqs(self, user: str) -> tuple[int, int]:
        """(last accepted inbound seq_num, last stored outbound seq_num); (0, 0) for a new user."""

    @abstractmethod
    async def outbound_after(self, user: str, after_seq: int, limit: int | None = None) -> list[tuple[int, str]]:
        """Stored outbound frames numbered > after_seq, ascending (at most `limit`)."""

    @abstractmethod
    async def inbound_after(self, user: str, after_seq: int, limit: int | None = None) -> list[tuple[int, str]]:
        """Accepted requests numbered > after_seq, ascending: what an application replays after its own restart."""

    @abstractmethod
    async def first_outbound(self, user: str) -> int:
        """The oldest outbound seq_num still kept (0 for none): a resume from before it cannot be served."""

    async def close(self) -> None:
        """Release connections (nothing to do for the memory store)."""


class _Stream:
    __slots__ = ("seqs", "frames")

    def __init__(self) -> None:
        self.seqs: list[int] = []
        self.frames: dict[int, str] = {}

    def put(self, seq: int, frame: str) -> None:
        if seq in self.frames:
            return  # idempotent: a retried batch
        self.frames[seq] = frame
        if not self.seqs or seq > self.seqs[-1]:
            self.seqs.append(seq)
        else:
            bisect.insort(self.seqs, seq)

    def trim(self, keep: int) -> None:
        for seq in self.seqs[:-keep]:
            del self.frames[seq]
        del self.seqs[:-keep]

    def after(self, after_seq: int, limit: int | None) -> list[tuple[int, str]]:
        start = bisect.bisect_right(self.seqs, after_seq)
        stop = len(self.seqs) if limit is None else min(len(self.seqs), start + limit)
        return [(s, self.frames[s]) for s in self.seqs[start:stop]]

    @property
    def last(self) -> int:
        return self.seqs[-1] if self.seqs else 0


class MemoryReportStore(ReportStore):
    """In-process store for tests and the demo: as the Redis one, without surviving the process."""

    def __init__(self, keep: int | None = None) -> None:
        self.keep = keep
        self._inbound: dict[str, _Stream] = {}
        self._outbound: dict[str, _Stream] = {}
        self.appends = 0  # batches written, for tests and benchmarks

    async def append(self, writes: Sequence[StreamWrite]) -> None:
        for w in writes:
            if w.inbound is not None:
                self._inbound.setdefault(w.user, _Stream()).put(*w.inbound)
            if w.outbound is not None:
                self._outbound.setdefault(w.user, _Stream()).put(*w.outbound)
            if self.keep is not None:
                for streams in (self._inbound, self._outbound):
                    if w.user in streams:
                        streams[w.user].trim(self.keep)
        self.appends += 1

    async def last_seqs(self, user: str) -> tuple[int, int]:
        inbound, outbound = self._inbound.get(user), self._outbound.get(user)
        return (inbound.last if inbound else 0, outbound.last if outbound else 0)

    async def outbound_after(self, user: str, after_seq: int, limit: int | None = None) -> list[tuple[int, str]]:
        stream = self._outbound.get(user)
        return stream.after(after_seq, limit) if stream else []

    async def inbound_after(self, user: str, after_seq: int, limit: int | None = None) -> list[tuple[int, str]]:
        stream = self._inbound.get(user)
        return stream.after(after_seq, limit) if stream else []

    async def first_outbound(self, user: str) -> int:
        stream = self._outbound.get(user)
        return stream.seqs[0] if stream and stream.seqs else 0
