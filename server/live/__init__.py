"""The room channel: chat, presence and room events (docs/protocol.md)."""
