"""Atelier: real-time collaboration server (Yjs rooms, chat, presence) for a school workspace."""

__version__ = "0.1.0"
