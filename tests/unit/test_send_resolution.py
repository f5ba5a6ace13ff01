"""An unknown send is resent only once the original request can no longer execute."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.send_resolution import NotFoundVerdict, conclusive_at, on_not_found


def test_not_found_inside_the_recv_window_means_ask_again_at_its_end() -> None:
    d = on_not_found(sent_at_ms=1_000, now_ms=5_000, recv_window_ms=10_000, margin_ms=500)
    assert d.verdict is NotFoundVerdict.ASK_AGAIN and d.at_ms == 11_500
    d = on_not_found(sent_at_ms=1_000, now_ms=11_500, recv_window_ms=10_000, margin_ms=500)
    assert d.verdict is NotFoundVerdict.RESEND


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 10**12), st.integers(0, 10**6), st.integers(0, 60_000), st.integers(0, 5_000))
def test_resend_never_happens_while_the_original_could_still_be_accepted(sent, later, window, margin) -> None:
    d = on_not_found(sent, sent + later, window, margin)
    # Binance accepts a request stamped `sent` until sent + recvWindow: a resend before that could double the order.
    assert (d.verdict is NotFoundVerdict.RESEND) == (later >= window + margin)
    assert d.at_ms == conclusive_at(sent, window, margin) >= sent + window


def test_negative_windows_are_refused() -> None:
    with pytest.raises(ValueError):
        conclusive_at(0, -1, 0)
