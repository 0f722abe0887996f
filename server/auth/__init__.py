"""Tokens, roles and the room permission table."""
