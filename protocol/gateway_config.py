"""Every number of the gateway: limits, timeouts, sizes (§10.8). Defaults here; the launcher passes its own.

(It would belong in core/config.py's Settings as a `gateway` section; core may not import protocol, so the section
lives here until the launcher (M6/M7) wires it in.)
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class GatewayConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(8765, ge=0, le=65535)  # 0: any free port (tests)
    path: str = "/ws"
    server_comp_id: str = "SERVER"
    #: Chains whose users we serve (Arbitrum, Base); any other chain_id is BAD_FIELD.
    allowed_chain_ids: frozenset[int] = frozenset({42161, 8453})

    #: Frames above this get NAK TOO_LARGE and the session goes on ...
    max_frame_bytes: int = Field(16_384, ge=512)
    #: ... frames above this cannot even be read: websockets closes the connection (1009).
    hard_max_frame_bytes: int = Field(1_048_576, ge=1024)
    max_connections: int = Field(20_000, ge=1)
    max_sessions_per_address: int = Field(4, ge=1)

    #: Per connection, every frame counts 1 (checked before anything is parsed beyond JSON).
    session_rate_per_s: int = Field(50, ge=1)
    session_burst: int = Field(100, ge=1)
    #: Per user (the signer's address, all its sessions together), weighted by message type.
    user_weight_per_s: int = Field(200, ge=1)
    user_burst: int = Field(400, ge=1)
    #: Whole gateway, every frame counts 1.
    global_rate_per_s: int = Field(100_000, ge=1)
    global_burst: int = Field(100_000, ge=1)
    #: msg_type -> weight for the user limit; overrides the plugin's defaults; unknown types weigh 1.
    message_weights: dict[str, int] = Field(default_factory=dict)

    #: A request's header timestamp must be within this of the server's clock (replay window, §10.2).
    max_clock_skew_ms: int = Field(60_000, ge=1)
    #: The server sends a Heartbeat after this long without sending, a TestRequest after this long without hearing.
    heartbeat_interval_ms: int = Field(10_000, ge=10)
    #: Nothing heard for this long: the connection is closed (4000). The user resumes from the store.
    idle_timeout_ms: int = Field(30_000, ge=10)
    #: A connection that has not logged on within this is closed (4002).
    logon_timeout_ms: int = Field(10_000, ge=10)

    #: Frames queued for one slow client beyond this: the session is closed (4001); it resumes from the store.
    max_outbound_queue: int = Field(10_000, ge=10)
    #: At most this many store writes wait; beyond, new requests get SERVER_BUSY (nothing is taken).
    max_pending_writes: int = Field(100_000, ge=10)
    commit_max_batch: int = Field(2_000, ge=1)
    #: Accepted requests go to the plugin in chunks of at most this many, the event loop served between chunks: after
    #: a hiccup the backlog (each request's application work and its signed report) does not hold every ACK behind
    #: it in one synchronous block.
    dispatch_chunk: int = Field(64, ge=1)
    commit_write_timeout_s: float = Field(5.0, gt=0)
    #: Stored frames read per page when resending after a Logon.
    resend_page: int = Field(500, ge=1)
    #: Quote messages may come unsigned on a logged-on session (the reference's rule). Off: §10.2 signs them too.
    allow_unsigned_quotes: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> "GatewayConfig":
        if self.hard_max_frame_bytes < self.max_frame_bytes:
            raise ValueError("hard_max_frame_bytes must be >= max_frame_bytes")
        if self.idle_timeout_ms <= self.heartbeat_interval_ms:
            raise ValueError("idle_timeout_ms must exceed heartbeat_interval_ms (a TestRequest needs time)")
        for name, weight in self.message_weights.items():
            if not 1 <= weight <= self.user_burst:
                raise ValueError(f"weight of {name} must be in [1, user_burst], got {weight}")
        return self
