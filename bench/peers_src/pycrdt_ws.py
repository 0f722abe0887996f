"""pycrdt-websocket served by uvicorn, as its README shows: one room per URL path, no auth.

Run with the peers' own venv: bench/peers/pycrdt/bin/python bench/peers_src/pycrdt_ws.py
Env: HOST (127.0.0.1), PORT (required). No persistence (no YStore): in memory only.
"""

import asyncio
import os

import uvicorn
from pycrdt.websocket import ASGIServer, WebsocketServer


async def main() -> None:
    websocket_server = WebsocketServer(auto_clean_rooms=True)
    app = ASGIServer(websocket_server)
    config = uvicorn.Config(
        app,
        host=os.environ.get("HOST", "127.0.0.1"),
        port=int(os.environ["PORT"]),
        log_level="warning",
        ws_max_size=64 * 1024 * 1024,
    )
    async with websocket_server:
        await uvicorn.Server(config).serve()


if __name__ == "__main__":
    asyncio.run(main())
