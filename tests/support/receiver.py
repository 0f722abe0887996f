"""A real HTTP receiver for the ENT webhook: a threaded ``http.server`` on a free port of
127.0.0.1 that checks each POST's signature, keeps what it received and can refuse the
first tries (503) to exercise the retries."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    def __init__(self, secret: str, *, fail_first: int = 0) -> None:
        self.secret = secret
        self.fail_first = fail_first
        self.attempts: list[dict[str, Any]] = []  # every POST, in arrival order
        self.taken: dict[str, dict[str, Any]] = {}  # idempotency key → body (first 2xx)
        self.bad_signatures = 0
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                receiver._received(self, raw)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/ent/notifications"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def _received(self, handler: BaseHTTPRequestHandler, raw: bytes) -> None:
        stamp = handler.headers.get("X-Atelier-Timestamp", "")
        expected = (
            "sha256="
            + hmac.new(
                self.secret.encode(), stamp.encode() + b"." + raw, hashlib.sha256
            ).hexdigest()
        )
        signed = hmac.compare_digest(expected, handler.headers.get("X-Atelier-Signature", ""))
        key = handler.headers.get("Idempotency-Key", "")
        with self._lock:
            self.attempts.append({"key": key, "signed": signed, "body": raw})
            if not signed:
                self.bad_signatures += 1
                status = 401
            elif self.fail_first > 0:
                self.fail_first -= 1
                status = 503
            else:
                self.taken.setdefault(key, json.loads(raw))
                status = 204
        handler.send_response(status)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def bodies(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.taken.values())
