"""Session delivery and group commit, without sockets: whatever order stream messages reach a session in (resend
and live interleaved, duplicates), the client gets each exactly once and in order; commits are batched, retried and
their callbacks run in submission order."""
from __future__ import annotations

import asyncio
from typing import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.group_commit import GroupCommitter
from protocol.rate_limit import TokenBucket
from protocol.report_store import MemoryReportStore, StreamWrite
from protocol.session import Session
from store.retry import RetryPolicy


class FakeSocket:
    def __init__(self) -> None:
        self.sent: list[str] = []
        self.closed_with: tuple[int, str] | None = None

    async def send(self, frame: str) -> None:
        self.sent.append(frame)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        self.closed_with = (code, reason)


async def _run_deliveries(cursor: int, deliveries: Sequence[int], max_queue: int = 10_000) -> tuple[FakeSocket,
                                                                                                   Session]:
    loop = asyncio.get_running_loop()
    ws = FakeSocket()
    session = Session(ws, TokenBucket(1, 1, 0), max_queue, loop.time())
    session.cursor = cursor
    sender = loop.create_task(session.run_sender())
    for seq in deliveries:
        session.deliver(seq, f"m{seq}")
    await asyncio.wait_for(session.drained(), 5)
    session.detach()
    await asyncio.wait_for(sender, 5)
    return ws, session


@settings(max_examples=150, deadline=None)
@given(st.integers(1, 5), st.integers(0, 30), st.data())
def test_any_interleaving_is_delivered_once_and_in_order(cursor: int, count: int, data: st.DataObject) -> None:
    seqs = list(range(1, cursor + count))  # some below the cursor: the client has them already
    repeats = data.draw(st.lists(st.sampled_from(seqs), max_size=10)) if seqs else []  # resend overlapping live
    deliveries = data.draw(st.permutations(seqs + repeats))
    ws, session = asyncio.run(_run_deliveries(cursor, deliveries))
    assert ws.sent == [f"m{s}" for s in range(cursor, cursor + count)]
    assert session.cursor == cursor + count


def test_a_gap_holds_later_messages_back_until_it_is_filled() -> None:
    async def scenario() -> list[str]:
        loop = asyncio.get_running_loop()
        ws = FakeSocket()
        session = Session(ws, TokenBucket(1, 1, 0), 100, loop.time())
        session.cursor = 1
        sender = loop.create_task(session.run_sender())
        session.deliver(2, "m2")
        session.deliver(3, "m3")
        await asyncio.wait_for(session.drained(), 5)
        held = list(ws.sent)
        session.deliver(1, "m1")
        await asyncio.wait_for(session.drained(), 5)
        session.detach()
        await sender
        return held + ["|"] + ws.sent

    assert asyncio.run(scenario()) == ["|", "m1", "m2", "m3"]


def test_a_message_lost_from_the_store_is_skipped_not_waited_for() -> None:
    async def scenario() -> list[str]:
        loop = asyncio.get_running_loop()
        ws = FakeSocket()
        session = Session(ws, TokenBucket(1, 1, 0), 100, loop.time())
        session.cursor = 1
        sender = loop.create_task(session.run_sender())
        for seq in (1, 3, 5, 6):
            session.deliver(seq, f"m{seq}")
        session.skip_gap(6)
        await asyncio.wait_for(session.drained(), 5)
        session.detach()
        await sender
        return ws.sent

    assert asyncio.run(scenario()) == ["m1", "m3", "m5", "m6"]


def test_a_client_that_does_not_read_is_closed_as_a_slow_consumer() -> None:
    async def scenario() -> tuple[int, str] | None:
        loop = asyncio.get_running_loop()
        ws = FakeSocket()
        session = Session(ws, TokenBucket(1, 1, 0), 5, loop.time())
        session.cursor = 1
        for seq in range(1, 10):  # no sender running: nothing drains
            session.deliver(seq, f"m{seq}")
        assert session.closed
        await asyncio.sleep(0)  # let the close task run (one loop turn, not a wait for time)
        return ws.closed_with

    assert asyncio.run(scenario()) == (4001, "slow consumer: too many frames queued; log on again to resume")


# --- group commit ------------------------------------------------------------------------------------------------


class FlakyStore(MemoryReportStore):
    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures
        self.batch_sizes: list[int] = []

    async def append(self, writes: Sequence[StreamWrite]) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("store down")
        self.batch_sizes.append(len(writes))
        await super().append(writes)


def test_commits_are_batched_retried_and_called_back_in_order() -> None:
    async def scenario() -> tuple[list[int], list[int], FlakyStore, GroupCommitter]:
        store = FlakyStore(failures=2)
        committer = GroupCommitter(store, max_batch=4, retry=RetryPolicy(1, 1, 1))
        done: list[int] = []
        for i in range(10):
            committer.submit(StreamWrite("u", (i + 1, f"in{i}"), (i + 1, f"out{i}")), lambda i=i: done.append(i))
        committer.start()
        await asyncio.wait_for(committer.flush(), 5)
        await committer.stop()
        return done, store.batch_sizes, store, committer

    done, sizes, store, committer = asyncio.run(scenario())
    assert done == list(range(10))
    assert sizes == [4, 4, 2] and committer.failures == 2
    assert asyncio.run(store.last_seqs("u")) == (10, 10)


def test_a_failing_callback_does_not_stop_the_others() -> None:
    async def scenario() -> list[int]:
        committer = GroupCommitter(MemoryReportStore())
        done: list[int] = []
        committer.submit(StreamWrite("u", None, (1, "a")), lambda: 1 / 0)  # type: ignore[func-returns-value]
        committer.submit(StreamWrite("u", None, (2, "b")), lambda: done.append(2))
        committer.start()
        await asyncio.wait_for(committer.flush(), 5)
        await committer.stop()
        return done

    assert asyncio.run(scenario()) == [2]


@settings(max_examples=60, deadline=None)
@given(st.sampled_from([0, 1, 125, 126, 127, 65535, 65536, 70_000]), st.text(max_size=3))
def test_our_text_frames_are_the_bytes_websockets_writes(size: int, tail: str) -> None:
    """Session writes its frames itself (one write per flush); they must be what websockets' own serializer gives
    for a server (unmasked, no extension), at each length boundary of RFC 6455 §5.2."""
    from websockets.frames import Frame, Opcode  # noqa: PLC0415

    from protocol.session import text_frame_bytes  # noqa: PLC0415

    data = ("x" * size + tail).encode()
    assert text_frame_bytes(data) == Frame(Opcode.TEXT, data).serialize(mask=False)
