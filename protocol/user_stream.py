"""One user's sequence state and live sessions, shared by all its connections (§10.3).

Both directions' numbers belong to the user, not to a socket: `in_seq` is the last request accepted from any
session, `out_seq` the last stream message numbered. Loaded from the store when the user first shows up; the store
holds the frames, so it is the truth after a restart. Every stream message goes to every live session of the user."""
from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from protocol.envelope import Body, UserRef
from protocol.rate_limit import TokenBucket

if TYPE_CHECKING:
    from protocol.session import Session


class UserStream:
    __slots__ = ("ref", "key", "in_seq", "out_seq", "sessions", "bucket", "server_comp_id", "client_comp_id",
                 "loading", "waiting")

    def __init__(self, ref: UserRef, bucket: TokenBucket, server_comp_id: str, client_comp_id: str = "CLIENT") -> None:
        self.ref = ref
        self.key = ref.key
        self.in_seq = 0
        self.out_seq = 0
        self.sessions: list[Session] = []  # live, logged-on sessions (few: bounded by max_sessions_per_address)
        self.bucket = bucket
        # Comp ids of our frames: swapped from the client's last accepted request (§10.1).
        self.server_comp_id = server_comp_id
        self.client_comp_id = client_comp_id
        self.loading: asyncio.Future[None] | None = None  # set while the sequence state is read from the store
        self.waiting: list[Body] = []  # bodies emitted while loading, emitted in order once loaded

    def next_out(self) -> int:
        self.out_seq += 1
        return self.out_seq

    def remember_comp_ids(self, sender_comp_id: str, target_comp_id: str) -> None:
        self.server_comp_id = target_comp_id
        self.client_comp_id = sender_comp_id

    def publish(self, seq: int, frame: str) -> None:
        """A stored stream message: hand it to every live session (each keeps its own order and cursor)."""
        for session in self.sessions:
            session.deliver(seq, frame)
