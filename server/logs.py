"""Logging set-up. A token never appears in a log line.

uvicorn's access and WebSocket logs print the path with its query string, and browsers
can only pass the token there (``/yjs/room/doc?token=...``). A filter on every handler
rewrites ``token=<anything>`` to ``token=[redacted]`` before a line is written, and so
the ENT sign-in callback's ``code=`` and ``state=``. Nothing in Atelier logs document or
chat content either.

``ATELIER_LOG_FORMAT=json`` writes one JSON object per line instead: ``ts`` (UTC, ISO
8601), ``level``, ``logger``, ``message`` (redacted as above), ``node``, and when known
``request_id``, ``conn_id``, ``user_id`` and ``room_id`` (``transport/logctx.py``, set
at the edge, at admission and by the REST helpers), ``exc`` for a traceback.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any, Literal

from server.transport import logctx

_TOKEN = re.compile(r"(token=)[^&\s\"']+", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
#: The ENT sign-in's callback (/auth/callback?code=...&state=...): a one-time code is
#: still a credential until it is used.
_OIDC = re.compile(r"(?<![\w-])((?:code|state)=)[^&\s\"']+", re.IGNORECASE)


def redact(text: str) -> str:
    # Each pattern runs only where its literal appears (its case aside): a regex scan
    # of every line cost 20 µs, a third of a socket's access line (the storm's 7 % of
    # CPU in logging). A substitution never adds a literal, so this is the same result.
    lowered = text.lower()
    if "token=" in lowered:
        text = _TOKEN.sub(r"\1[redacted]", text)
    if "code=" in lowered or "state=" in lowered:
        text = _OIDC.sub(r"\1[redacted]", text)
    if "bearer" in lowered:
        text = _BEARER.sub(r"\1[redacted]", text)
    return text


def lean_records() -> None:
    """Stop gathering, for every record, what no format of ours prints: the caller's
    file, line and function (a walk up the stack per line) and the thread and process
    names. The logging HOWTO's "Optimization" knobs; 10 µs of a line's 50."""
    logging._srcfile = None  # type: ignore[attr-defined]
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


class RedactTokens(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:
            return True
        clean = redact(message)
        if clean != message:
            record.msg = clean
            record.args = None
        return True


class JsonLines(logging.Formatter):
    """One JSON object per record, on one line (a newline inside is escaped)."""

    def __init__(self, node: str = "") -> None:
        super().__init__()
        self.node = node

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": redact(record.getMessage()),
            "node": self.node,
            **logctx.fields(),
        }
        if record.exc_info:
            line["exc"] = redact(self.formatException(record.exc_info))
        return json.dumps(line, ensure_ascii=False)


def log_config(
    level: str = "info", fmt: Literal["plain", "json"] = "plain", node: str = ""
) -> dict[str, Any]:
    """A uvicorn ``log_config`` whose every handler redacts tokens; ``fmt`` json: one
    JSON object per line (``JsonLines``)."""
    plain = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": RedactTokens}},
        "formatters": {
            "plain": {"format": plain},
            "json": {"()": JsonLines, "node": node},
        },
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": fmt,
                "filters": ["redact"],
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "": {"handlers": ["default"], "level": level.upper()},
            "uvicorn": {"handlers": ["default"], "level": level.upper(), "propagate": False},
            "uvicorn.error": {"level": level.upper()},
            # The sans-I/O library's lines ("connection open" per socket): warnings only.
            "websockets": {"level": "WARNING"},
            "uvicorn.access": {
                "handlers": ["default"],
                "level": level.upper(),
                "propagate": False,
            },
        },
    }
