"""The boundary between the gateway and an application.

The gateway knows sessions, sequence numbers, signatures, limits and the store, nothing of what a message means. A
plugin declares the request bodies it takes; the gateway decodes, authenticates, stores and ACKs them and hands
them over in order, one call per commit batch (so an application behind a Ray actor costs one call per batch).
Each body emitted through the `Outbox` becomes a signed, numbered, stored stream message."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Protocol, Sequence

from protocol.envelope import Body, UserRef
from protocol.reason_codes import NakCode


@dataclass(slots=True, frozen=True)
class Inbound:
    """One accepted request: its user (the verified signer), its seq_num and its decoded body."""

    user: UserRef
    seq_num: int
    body: Body
    received_ms: int

    @property
    def msg_type(self) -> str:
        return self.body.MSG_TYPE


@dataclass(slots=True, frozen=True)
class Refusal:
    """A plugin's reason to NAK a request before it is taken (e.g. a message type the application does not offer)."""

    code: NakCode
    text: str


class Outbox(Protocol):
    def emit(self, user: UserRef, body: Body) -> None:
        """Send `body` to `user` as the next message of its stream (stored first; delivered to its live sessions,
        or resent when it logs on). Callable from the gateway's event loop only."""


class Plugin(Protocol):
    #: msg_type -> body model of every request the application takes.
    requests: Mapping[str, type[Body]]
    #: msg_type -> weight in the per-user rate limit (unlisted: 1); the gateway config may override.
    message_weights: Mapping[str, int]
    #: Requests that may come unsigned on a logged-on session when the gateway allows it (quotes).
    unsigned_ok: frozenset[str]

    def attach(self, outbox: Outbox) -> None:
        """Called once by the gateway before the first request."""

    def precheck(self, user: UserRef, body: Body) -> Refusal | None:
        """Synchronous, cheap: None to take the request, or why not (it is then NAKed and not sequenced)."""

    async def on_requests(self, batch: Sequence[Inbound]) -> None:
        """Accepted requests, already ACKed, in acceptance order. Called again only after the previous call
        returned; requests accepted meanwhile come in the next batch."""

    async def close(self) -> None:
        """The gateway is stopping."""


class BasePlugin:
    """Defaults for the optional parts of `Plugin`."""

    requests: Mapping[str, type[Body]] = {}
    message_weights: Mapping[str, int] = {}
    unsigned_ok: frozenset[str] = frozenset()

    def __init__(self) -> None:
        self.outbox: Outbox | None = None

    def attach(self, outbox: Outbox) -> None:
        self.outbox = outbox

    def precheck(self, user: UserRef, body: Body) -> Refusal | None:
        return None

    async def on_requests(self, batch: Sequence[Inbound]) -> None:  # pragma: no cover  (abstract in spirit)
        raise NotImplementedError

    async def close(self) -> None:
        return None
