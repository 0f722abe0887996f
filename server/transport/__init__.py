"""Client sockets from the ASGI edge to the endpoints: routing, peers, limits, close codes.

``edge.py`` is the outermost ASGI app and the only WebSocket router; it hands each
endpoint a ``ClientSocket`` (``socket.py``). A ``Peer`` (``peer.py``) is one socket with
its bounded send queue and state machine; rooms/ and live/ see it only through the small
``PeerHandle`` interface of ``server/types.py``. ``protocol.py`` is the uvicorn protocol
with the direct send path; ``limits.py`` the token bucket; ``codes.py`` the close codes.
"""
