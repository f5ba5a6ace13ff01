"""Bodies of the session-level messages, the ones the server itself understands (spec/fix-json.md §10.3, §10.4).

ACKs and application messages form the user's *stream* (numbered per user, stored, resent after a reconnect); NAKs,
Heartbeats and TestRequests are *session frames* (seq_num 0, never stored or resent), our choice where the spec is
silent. A NAK never advances the inbound sequence, so a flood or a replay leaves no trace in the store."""
from __future__ import annotations

from typing import Annotated, ClassVar

from protocol.envelope import Body
from protocol.reason_codes import NakCode
from protocol.wire_types import EnumValue, U32, Id, Text

# --- client -> server --------------------------------------------------------------------------------------------

class Logon(Body):
    """Starts a session: binds the connection to the signer. `last_server_seq_num` is the last stream message the
    client processed (0: send everything); absent means "live only, no resend" (a one-shot CLI). Signed and
    sequenced like every request: a replayed Logon has a used seq_num and is refused."""

    MSG_TYPE: ClassVar[str] = "Logon"
    last_server_seq_num: U32 | None = None


class Logout(Body):
    """Ends the session; the server ACKs it, then closes the connection."""

    MSG_TYPE: ClassVar[str] = "Logout"


# --- both directions ---------------------------------------------------------------------------------------------

class Heartbeat(Body):
    """Session frame (seq_num 0, need not be signed). `test_req_id` answers a TestRequest."""

    MSG_TYPE: ClassVar[str] = "Heartbeat"
    test_req_id: Id | None = None


class TestRequest(Body):
    """Session frame asking the peer for a Heartbeat carrying the same id."""

    __test__ = False  # not a pytest test class
    MSG_TYPE: ClassVar[str] = "TestRequest"
    test_req_id: Id


# --- server -> client --------------------------------------------------------------------------------------------

class Ack(Body):
    """The request numbered `ref_seq_num` passed the protocol checks and is stored; business answers follow."""

    MSG_TYPE: ClassVar[str] = "ACK"
    ref_seq_num: U32


class Nak(Body):
    """The frame was not taken. `ref_seq_num` is its seq_num when it could be read, else 0."""

    MSG_TYPE: ClassVar[str] = "NAK"
    ref_seq_num: U32
    reason_code: Annotated[NakCode, EnumValue]
    reason: Text
    retry_after_ms: U32 | None = None  # RATE_LIMITED, SERVER_BUSY
    expected_seq_num: U32 | None = None  # BAD_SEQUENCE: the number the server expects next


CLIENT_SESSION_BODIES: dict[str, type[Body]] = {m.MSG_TYPE: m for m in (Logon, Logout, Heartbeat, TestRequest)}
SERVER_SESSION_BODIES: dict[str, type[Body]] = {m.MSG_TYPE: m for m in (Ack, Nak, Heartbeat, TestRequest)}
#: Session frames: seq_num 0, not sequenced, not stored, no signature needed.
SESSION_FRAME_TYPES = frozenset({Heartbeat.MSG_TYPE, TestRequest.MSG_TYPE})
