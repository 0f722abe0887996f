"""A small y-websocket client on pycrdt and websockets, for the Python-side tests.

It speaks the protocol as a stock client does (answers sync step 1, sends its own,
sends updates as they happen) and records what the server sent and how it closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import time
from typing import Any

import websockets
from pycrdt import Doc, Text, create_sync_message, handle_sync_message, write_var_uint

from server.sync.messages import (
    AwarenessMessage,
    ProtocolError,
    SyncStep1,
    SyncStep2,
    SyncUpdate,
    awareness_frame,
    decode,
    update_frame,
)


def awareness_payload(client_id: int, clock: int, state: dict[str, Any] | None) -> bytes:
    raw = json.dumps(state).encode()
    return (
        write_var_uint(1)
        + write_var_uint(client_id)
        + write_var_uint(clock)
        + write_var_uint(len(raw))
        + raw
    )


class YClient:
    def __init__(self, url: str) -> None:
        self.url = url
        self.doc: Doc = Doc()
        self.text = self.doc.get("content", type=Text)
        self.ws: Any = None
        self.synced = asyncio.Event()
        self.closed = asyncio.Event()
        self.close_code: int | None = None
        self.close_reason: str = ""
        self.denied: list[bytes] = []
        self.denied_at: list[float] = []  # time.time() each refusal arrived
        self.awareness: dict[int, Any] = {}
        self.received_updates = 0
        self.step2_count = 0  # sync step 2 frames received (the first one syncs)
        self._reader: asyncio.Task[None] | None = None
        self._sub = None
        self._applying = False

    async def connect(self, *, wait_synced: bool = True, timeout: float = 10) -> YClient:
        self.ws = await websockets.connect(self.url, max_size=None, open_timeout=timeout)
        self._sub = self.doc.observe(self._on_local)
        self._reader = asyncio.create_task(self._read())
        try:
            await self.ws.send(create_sync_message(self.doc))
        except websockets.ConnectionClosed:
            pass  # refused before our first frame: the reader records how
        if wait_synced:
            await asyncio.wait_for(self._until_synced_or_closed(), timeout)
        return self

    async def _until_synced_or_closed(self) -> None:
        _, pending = await asyncio.wait(
            [asyncio.create_task(self.synced.wait()), asyncio.create_task(self.closed.wait())],
            return_when=asyncio.FIRST_COMPLETED,
        )
        for t in pending:
            t.cancel()

    def _on_local(self, event: Any) -> None:
        if self._applying or self.ws is None:
            return
        update = event.update
        if update != b"\x00\x00":
            self._pending.append(update_frame(update))

    @property
    def _pending(self) -> list[bytes]:
        if not hasattr(self, "_out"):
            self._out: list[bytes] = []
        return self._out

    async def flush(self) -> None:
        while self._pending:
            frame = self._pending.pop(0)
            await self.ws.send(frame)

    async def type(self, text: str, index: int | None = None) -> None:
        self.text.insert(len(self.text) if index is None else index, text)
        await self.flush()

    async def send_raw(self, frame: bytes) -> None:
        await self.ws.send(frame)

    async def set_awareness(self, clock: int, state: dict[str, Any] | None) -> None:
        payload = awareness_payload(self.doc.client_id, clock, state)
        await self.ws.send(awareness_frame(payload))

    async def _read(self) -> None:
        try:
            async for frame in self.ws:
                if isinstance(frame, str):
                    continue
                if frame[0] == 2:
                    self.denied.append(frame)
                    self.denied_at.append(time.time())
                    continue
                try:
                    msg = decode(frame)
                except ProtocolError:
                    continue
                if isinstance(msg, SyncStep1):
                    self._applying = True
                    try:
                        reply = handle_sync_message(frame[1:], self.doc)
                    finally:
                        self._applying = False
                    if reply is not None:
                        await self.ws.send(reply)
                elif isinstance(msg, SyncStep2 | SyncUpdate):
                    self._applying = True
                    try:
                        self.doc.apply_update(msg.update)
                    finally:
                        self._applying = False
                    self.received_updates += 1
                    if isinstance(msg, SyncStep2):
                        self.step2_count += 1
                        self.synced.set()
                elif isinstance(msg, AwarenessMessage):
                    for e in msg.entries:
                        if e.state is None:
                            self.awareness.pop(e.client_id, None)
                        else:
                            self.awareness[e.client_id] = e.state
        except websockets.ConnectionClosed:
            pass
        finally:
            if self.ws.close_code is not None or self.ws.protocol.close_rcvd is not None:
                rcvd = self.ws.protocol.close_rcvd
                self.close_code = rcvd.code if rcvd is not None else self.ws.close_code
                self.close_reason = rcvd.reason if rcvd is not None else ""
            self.closed.set()

    async def round_trip(self, timeout: float = 10) -> None:
        """A barrier: send a sync step 1 and wait for the server's step 2 answering it.

        The server handles one socket's frames in order and answers on that socket in
        order, so once the answer is here every frame sent before has been handled, and
        whatever the server sent this socket before answering (a fan-out, a refusal) has
        arrived too. Fails if the socket closes instead.
        """
        before = self.step2_count
        await self.ws.send(create_sync_message(self.doc))
        await eventually(lambda: self.step2_count > before or self.closed.is_set(), timeout)
        assert self.step2_count > before, f"closed ({self.close_code}) instead of answering"

    async def wait_closed(self, timeout: float = 10) -> int | None:
        await asyncio.wait_for(self.closed.wait(), timeout)
        return self.close_code

    async def close(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(Exception):
                self.doc.unobserve(self._sub)
            self._sub = None
        if self.ws is not None:
            await self.ws.close()
        if self._reader is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._reader, 5)

    def content(self) -> str:
        return str(self.text)


async def eventually(predicate: Any, timeout: float = 10, interval: float = 0.05) -> None:
    """Wait until ``predicate()`` is true; fail with the last value otherwise.

    ``predicate`` may be a coroutine function (e.g. ``lambda: bus.alive(...)`` compared
    in an ``async def``): its result is awaited each time.
    """
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)
