"""A stand-in for the ENT's identity provider: a real HTTP server on 127.0.0.1 serving a
JWKS of real keys (``cryptography``: RSA 2048 and EC P-256), and signing tokens with them.

It counts the JWKS fetches, rotates keys (``add`` / ``remove``) and goes down and up
again on the same port (``down()``: the port refuses connections, like a dead ENT).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.support.server import free_port

ISSUER = "https://ent.example.org/auth"
AUDIENCE = "atelier"


@dataclass
class SigningKey:
    kid: str
    alg: str  # RS256 or ES256
    private: Any = field(repr=False)

    @classmethod
    def rsa(cls, kid: str) -> SigningKey:
        return cls(kid, "RS256", rsa.generate_private_key(public_exponent=65537, key_size=2048))

    @classmethod
    def ec(cls, kid: str) -> SigningKey:
        return cls(kid, "ES256", ec.generate_private_key(ec.SECP256R1()))

    def jwk(self) -> dict[str, Any]:
        algo = RSAAlgorithm if self.alg == "RS256" else ECAlgorithm
        data: dict[str, Any] = algo.to_jwk(self.private.public_key(), as_dict=True)
        return {**data, "kid": self.kid, "use": "sig", "alg": self.alg}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )

    def sign(self, claims: dict[str, Any], *, kid: str | None = None, **header: Any) -> str:
        """``claims`` signed with this key, the header naming ``kid`` (default: its own)."""
        headers = {"kid": self.kid if kid is None else kid, **header}
        return jwt.encode(claims, self.private, self.alg, headers=headers)


def ent_claims(user: str, ttl: float = 300, **extra: Any) -> dict[str, Any]:
    """The claims of a good ENT token for ``user`` (``extra`` overrides or adds; a value
    of None removes the claim)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER,
        "aud": AUDIENCE,
        "sub": user,
        "iat": now,
        "exp": int(now + ttl),
        "jti": f"jti-{time.monotonic_ns()}",
        "sid": "ent-session-1",
    }
    claims.update(extra)
    return {k: v for k, v in claims.items() if v is not None}


class JwksServer:
    def __init__(self, *keys: SigningKey) -> None:
        self.port = free_port()
        self.path = "/.well-known/jwks.json"
        self._keys: dict[str, SigningKey] = {k.kid: k for k in keys}
        self._lock = threading.Lock()
        self._fetches = 0
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    @property
    def fetches(self) -> int:
        with self._lock:
            return self._fetches

    def add(self, key: SigningKey) -> SigningKey:
        with self._lock:
            self._keys[key.kid] = key
        return key

    def remove(self, kid: str) -> None:
        with self._lock:
            del self._keys[kid]

    def document(self) -> bytes:
        with self._lock:
            return json.dumps({"keys": [k.jwk() for k in self._keys.values()]}).encode()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        jwks = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path != jwks.path:
                    self.send_error(404)
                    return
                with jwks._lock:
                    jwks._fetches += 1
                body = jwks.document()
                self.send_response(200)
                self.send_header("Content-Type", "application/jwk-set+json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler

    def start(self) -> JwksServer:
        """Serve (again, on the same port)."""
        assert self._httpd is None
        self._httpd = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Go down: the port refuses connections until ``start()``."""
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        assert self._thread is not None
        self._thread.join(5)
        self._httpd = self._thread = None

    down = stop
    up = start


def hs256_signed_with(secret: bytes, claims: dict[str, Any], **header: Any) -> str:
    """An HS256 token whose HMAC key is ``secret`` — any bytes, e.g. a public key's PEM,
    which PyJWT rightly refuses to sign with: the algorithm-confusion attack, by hand."""

    def b64(raw: bytes) -> bytes:
        return base64.urlsafe_b64encode(raw).rstrip(b"=")

    head = b64(json.dumps({"alg": "HS256", "typ": "JWT", **header}).encode())
    body = b64(json.dumps(claims).encode())
    mac = hmac.new(secret, head + b"." + body, hashlib.sha256).digest()
    return (head + b"." + body + b"." + b64(mac)).decode()
