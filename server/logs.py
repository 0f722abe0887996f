"""Logging set-up. A token never appears in a log line.

uvicorn's access and WebSocket logs print the path with its query string, and browsers
can only pass the token there (``/yjs/room/doc?token=...``). A filter on every handler
rewrites ``token=<anything>`` to ``token=[redacted]`` before a line is written, and so
the ENT sign-in callback's ``code=`` and ``state=``. Nothing in Atelier logs document or
chat content either.
"""

from __future__ import annotations

import logging
import re
from typing import Any

_TOKEN = re.compile(r"(token=)[^&\s\"']+", re.IGNORECASE)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+", re.IGNORECASE)
#: The ENT sign-in's callback (/auth/callback?code=...&state=...): a one-time code is
#: still a credential until it is used.
_OIDC = re.compile(r"(?<![\w-])((?:code|state)=)[^&\s\"']+", re.IGNORECASE)


def redact(text: str) -> str:
    text = _OIDC.sub(r"\1[redacted]", _TOKEN.sub(r"\1[redacted]", text))
    return _BEARER.sub(r"\1[redacted]", text)


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


def log_config(level: str = "info") -> dict[str, Any]:
    """A uvicorn ``log_config`` whose every handler redacts tokens."""
    fmt = "%(asctime)s %(levelname)s %(name)s: %(message)s"
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"redact": {"()": RedactTokens}},
        "formatters": {"plain": {"format": fmt}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "filters": ["redact"],
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "": {"handlers": ["default"], "level": level.upper()},
            "uvicorn": {"handlers": ["default"], "level": level.upper(), "propagate": False},
            "uvicorn.error": {"level": level.upper()},
            "uvicorn.access": {
                "handlers": ["default"],
                "level": level.upper(),
                "propagate": False,
            },
        },
    }
