"""Helpers that let each test read like a story: start a server, connect as X, converge."""
