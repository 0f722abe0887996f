"""Notifications: each user's feed (persisted, pushed live) and the ENT webhook outbox."""
