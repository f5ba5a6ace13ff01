"""One logging setup per process: stdlib `logging` records are handed to loguru, as JSON lines when configured.

Code logs through stdlib `logging` (no dependency, cheap disabled levels); loguru owns the one output. Ids travel
as `extra={"order_id": oid}` and land on JSON lines, so lines can be joined by order, batch, route. Configured by
INDEXMAKER_LOG_LEVEL and INDEXMAKER_LOG_JSON, so every Ray worker reads the same. Tracebacks never show locals:
they may hold secrets."""
from __future__ import annotations

import logging
import os
import sys
from typing import Any, TextIO

from loguru import logger

LEVEL_ENV = "INDEXMAKER_LOG_LEVEL"
JSON_ENV = "INDEXMAKER_LOG_JSON"

#: stdlib `extra` keys bound as loguru fields (ids an operator searches by). Anything else in `extra` is ignored.
ID_FIELDS = ("order_id", "client_order_id", "batch_id", "route_id", "invoice_id", "user", "shard", "seq", "tx")

#: Libraries that log every connection at INFO (a gateway under load opens thousands): WARNING and up only, unless
#: the configured level is DEBUG or lower.
QUIET_LOGGERS = ("websockets", "aiohttp.access")

_TEXT_FORMAT = "{time:YYYY-MM-DD HH:mm:ss.SSS} | {level: <7} | {extra[actor]} | {name}:{line} | {message}"


def _text_format(record: Any) -> str:
    """The text line: the fixed part, then whichever ids the record carries as key=value."""
    ids = " ".join(f"{k}={{extra[{k}]}}" for k in ID_FIELDS if k in record["extra"])
    tail = f" | {ids}" if ids else ""
    return _TEXT_FORMAT + tail + "\n{exception}"


class _ToLoguru(logging.Handler):
    """A stdlib handler that re-emits each record through loguru, at the caller's frame, with its ids bound."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            level: str | int = logger.level(record.levelname).name
        except ValueError:  # a custom stdlib level loguru does not know
            level = record.levelno
        # loguru names the frame `depth` levels up as the origin: skip stdlib logging's own frames.
        frame, depth = sys._getframe(1), 1
        while frame is not None and frame.f_code.co_filename == logging.__file__:
            frame = frame.f_back
            depth += 1
        ids = {k: record.__dict__[k] for k in ID_FIELDS if k in record.__dict__}
        logger.bind(logger=record.name, **ids).opt(depth=depth, exception=record.exc_info).log(
            level, record.getMessage())


def _env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def setup_logging(actor: str | None = None, *, level: str | None = None, serialize: bool | None = None,
                  sink: TextIO | Any = None) -> None:
    """Route this process's stdlib logging into loguru and give loguru one sink. Idempotent: a second call (an
    actor restarted in the same worker, a test) replaces the first configuration.

    `actor` is bound to every line (`extra.actor`); `level`/`serialize` default to the environment; `sink` defaults
    to stderr (a Ray worker's stderr is its log file)."""
    level = (level or os.environ.get(LEVEL_ENV) or "INFO").upper()
    try:
        logger.level(level)
    except ValueError:
        raise ValueError(f"log level {level!r} is not one of TRACE DEBUG INFO SUCCESS WARNING ERROR CRITICAL "
                         f"(from the argument or {LEVEL_ENV})") from None
    if serialize is None:
        serialize = _env_flag(JSON_ENV)
    logger.remove()
    logger.configure(extra={"actor": actor or os.environ.get("INDEXMAKER_ACTOR", "-")})
    logger.add(sink if sink is not None else sys.stderr, level=level, serialize=serialize,
               format=_TEXT_FORMAT + "\n{exception}" if serialize else _text_format,
               backtrace=False, diagnose=False, enqueue=False)
    # stdlib drops what is below the level before any record is made (cheap), everything else goes to loguru.
    number = logger.level(level).no
    logging.basicConfig(handlers=[_ToLoguru()], level=number, force=True)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(number if number <= logging.DEBUG else max(number, logging.WARNING))
