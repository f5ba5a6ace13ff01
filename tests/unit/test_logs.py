"""actors/logs.py: stdlib logging lands in loguru, as JSON lines with the ids a call site passes as `extra`."""
from __future__ import annotations

import io
import json
import logging
import sys

import pytest
from loguru import logger

from actors.logs import QUIET_LOGGERS, setup_logging


@pytest.fixture
def restore_logging():
    """setup_logging replaces the root handlers and loguru's sinks: give the next tests what they had."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    quiet = {name: logging.getLogger(name).level for name in QUIET_LOGGERS}
    yield
    logger.remove()
    logger.add(sys.stderr)
    root.handlers[:] = handlers
    root.setLevel(level)
    for name, was in quiet.items():
        logging.getLogger(name).setLevel(was)


def _lines(buf: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in buf.getvalue().splitlines() if line.strip()]


def test_json_lines_carry_the_ids_bound_at_the_call_site(restore_logging) -> None:
    buf = io.StringIO()
    setup_logging("solver", serialize=True, sink=buf)
    logging.getLogger("actors.sender").warning("order %s outcome unknown", "b7.BTCUSDC.0",
                                               extra={"client_order_id": "b7.BTCUSDC.0", "batch_id": "b7",
                                                      "password": "not an id"})
    [line] = _lines(buf)
    record = line["record"]
    assert record["message"] == "order b7.BTCUSDC.0 outcome unknown"
    assert record["level"]["name"] == "WARNING"
    assert record["extra"]["client_order_id"] == "b7.BTCUSDC.0"
    assert record["extra"]["batch_id"] == "b7"
    assert record["extra"]["actor"] == "solver"
    assert record["extra"]["logger"] == "actors.sender"
    assert "password" not in record["extra"]  # only the id fields are taken from `extra`
    # the origin is the caller, not stdlib logging's internals
    assert record["function"] == "test_json_lines_carry_the_ids_bound_at_the_call_site"
    assert record["file"]["name"] == "test_logs.py"


def test_level_filters_and_exceptions_keep_their_traceback(restore_logging) -> None:
    buf = io.StringIO()
    setup_logging("gateway", level="INFO", serialize=True, sink=buf)
    log = logging.getLogger("protocol.server")
    log.debug("not shown")
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("frame handling failed")
    [line] = _lines(buf)
    assert line["record"]["level"]["name"] == "ERROR"
    assert line["record"]["exception"]["type"] == "RuntimeError"
    assert "RuntimeError: boom" in line["text"]


def test_text_lines_show_the_ids_as_key_value(restore_logging) -> None:
    buf = io.StringIO()
    setup_logging("minter", serialize=False, sink=buf)
    logging.getLogger("actors.minter").warning("mint failed: %s", "reverted", extra={"order_id": "0xab:C-1"})
    text = buf.getvalue()
    assert "mint failed: reverted" in text and "order_id=0xab:C-1" in text and "| minter |" in text
    assert not text.lstrip().startswith("{")


def test_environment_switches_json_and_level(restore_logging, monkeypatch) -> None:
    monkeypatch.setenv("INDEXMAKER_LOG_JSON", "1")
    monkeypatch.setenv("INDEXMAKER_LOG_LEVEL", "warning")
    buf = io.StringIO()
    setup_logging("x", sink=buf)
    logging.getLogger("a").info("dropped")
    logging.getLogger("a").warning("kept")
    assert [line["record"]["message"] for line in _lines(buf)] == ["kept"]


def test_a_second_setup_replaces_the_first(restore_logging) -> None:
    first, second = io.StringIO(), io.StringIO()
    setup_logging("a", serialize=True, sink=first)
    setup_logging("b", serialize=True, sink=second)
    logging.getLogger("z").warning("once")
    assert first.getvalue() == ""
    assert [line["record"]["extra"]["actor"] for line in _lines(second)] == ["b"]


def test_an_unknown_level_is_a_clear_error(restore_logging) -> None:
    with pytest.raises(ValueError, match="INDEXMAKER_LOG_LEVEL"):
        setup_logging("a", level="LOUD", sink=io.StringIO())


def test_per_connection_library_chatter_is_quiet_unless_debugging(restore_logging) -> None:
    buf = io.StringIO()
    setup_logging("gateway", serialize=True, sink=buf)
    logging.getLogger("websockets.server").info("connection open")
    logging.getLogger("websockets.server").warning("handshake failed")
    assert [line["record"]["message"] for line in _lines(buf)] == ["handshake failed"]
    setup_logging("gateway", level="DEBUG", serialize=True, sink=buf)
    logging.getLogger("websockets.server").info("connection open")
    assert _lines(buf)[-1]["record"]["message"] == "connection open"
