"""A room-channel client for the Python tests: connect as X, post, read what arrives."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import msgpack
import websockets

from tests.support.yclient import eventually


class LiveClient:
    def __init__(self, url: str) -> None:
        self.url = url
        self.ws: Any = None
        self.frames: list[dict[str, Any]] = []
        self.hello: dict[str, Any] | None = None
        self.messages: dict[int, dict[str, Any]] = {}  # id → latest version
        self.order: list[int] = []  # seqs of new messages, in arrival order (history first)
        self.presence: dict[str, dict[str, Any]] = {}  # user → {name, role, metas: {conn: meta}}
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self._reader: asyncio.Task[None] | None = None
        self._refs = 0

    async def connect(self, *, wait_hello: bool = True, timeout: float = 10) -> LiveClient:
        self.ws = await websockets.connect(self.url, max_size=None, open_timeout=timeout)
        self._reader = asyncio.create_task(self._read())
        if wait_hello:
            await eventually(lambda: self.hello is not None or self.closed.is_set(), timeout)
        return self

    async def send(self, frame: dict[str, Any]) -> str:
        self._refs += 1
        ref = f"r{self._refs}"
        await self.ws.send(msgpack.packb({**frame, "ref": ref}))
        return ref

    async def send_raw(self, data: bytes | str) -> None:
        await self.ws.send(data)

    async def request(self, frame: dict[str, Any], timeout: float = 10) -> dict[str, Any]:
        """Send, and return the ok or error frame answering it."""
        ref = await self.send(frame)
        await eventually(lambda: self.answer(ref) is not None, timeout)
        answer = self.answer(ref)
        assert answer is not None
        return answer

    def answer(self, ref: str) -> dict[str, Any] | None:
        for f in self.frames:
            if f.get("t") in ("ok", "error", "pong") and f.get("ref") == ref:
                return f
        return None

    def of_type(self, t: str) -> list[dict[str, Any]]:
        return [f for f in self.frames if f.get("t") == t]

    def texts(self) -> list[str]:
        """The room's messages as this client shows them, in seq order."""
        return [
            self.messages[i]["text"]
            for i in sorted(self.messages, key=lambda i: self.messages[i]["seq"])
        ]

    def online(self) -> dict[str, int]:
        return {u: len(e["metas"]) for u, e in self.presence.items() if e["metas"]}

    def _take(self, message: dict[str, Any], new: bool) -> None:
        held = self.messages.get(message["id"])
        if held is None:
            self.order.append(message["seq"])
        if held is None or message["version"] > held["version"]:
            self.messages[message["id"]] = message

    def _apply_users(self, users: dict[str, Any], join: bool) -> None:
        for user, entry in users.items():
            mine = self.presence.setdefault(
                user, {"name": entry["name"], "role": entry["role"], "metas": {}}
            )
            for meta in entry["metas"]:
                if join:
                    mine["metas"][meta["conn"]] = meta
                else:
                    mine["metas"].pop(meta["conn"], None)

    async def _read(self) -> None:
        try:
            async for data in self.ws:
                frame = msgpack.unpackb(data, raw=False)
                self.frames.append(frame)
                t = frame.get("t")
                if t == "hello":
                    self.hello = frame
                    for m in frame["history"]:
                        self._take(m, True)
                    if "presence" in frame:
                        self._apply_users(frame["presence"]["users"], True)
                elif t == "message":
                    self._take(frame["message"], True)
                elif t == "presence_state":
                    self.presence = {}
                    self._apply_users(frame["presence"]["users"], True)
                elif t == "presence_diff":
                    self._apply_users(frame["leaves"], False)
                    self._apply_users(frame["joins"], True)
        except websockets.ConnectionClosed:
            pass
        finally:
            rcvd = self.ws.protocol.close_rcvd
            self.close_code = rcvd.code if rcvd is not None else self.ws.close_code
            self.closed.set()

    async def wait_closed(self, timeout: float = 10) -> int | None:
        await asyncio.wait_for(self.closed.wait(), timeout)
        return self.close_code

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)
