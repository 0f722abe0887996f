"""uvicorn's websockets-sansio protocol, with a synchronous send for the broadcast path.

Through ASGI, every frame to every socket is an awaited ``send`` — a task switch per
socket per update, which py-spy showed to be most of the server's time in a classroom
(bench/). This subclass puts itself in the scope (``atelier.direct``) so that a peer can
write a frame at once: ``send_now`` frames it with the sans-I/O protocol and hands the
bytes to the transport, no task, no await. It refuses (returns False) whenever the
ordinary path must be used — before the handshake completes, once closing, and while the
transport is paused for back-pressure — so ordering and flow control are uvicorn's own.
"""

from __future__ import annotations

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol


class AtelierWebSocketProtocol(WebSocketsSansIOProtocol):
    def handle_connect(self, event):  # type: ignore[no-untyped-def]
        super().handle_connect(event)
        scope = getattr(self, "scope", None)
        if scope is not None:
            scope["atelier.direct"] = self

    def send_now(self, data: bytes) -> bool:
        """Write one binary frame now if nothing stands in the way; else return False."""
        if (
            not self.handshake_complete
            or self.close_sent
            or self.disconnected
            or not self.writable.is_set()
            or self.transport.is_closing()
        ):
            return False
        conn = self.conn
        conn.send_binary(data)
        self.transport.write(b"".join(conn.data_to_send()))
        return True

    def buffered(self) -> int:
        """Bytes written to the socket but not yet taken by the kernel."""
        return self.transport.get_write_buffer_size()
