"""Admission control: how many sockets a node lets in at once, and what it tells the rest
(issue 15, connection storms).

At 08:00 whole classes open their documents within a minute, and a node that restarts
sends its thousands of clients to the others at once. Taking every handshake at the same
time slows each of them (token checks, roster look-ups and doc loads share one event loop
and a small database pool) until some exceed the pre-auth timeout and retry at once: the
node does more work for fewer connections. So a node lets in a bounded number at a time
and keeps the rest waiting in line, in order; past the line, it refuses with a delay
computed from what it measures, spread so that refused clients do not return together.

- ``gate.py``: the gate itself, sans I/O (a clock and a random source injected): slots,
  the waiting line, the maximum wait, the retry delay.
- ``line.py``: the gate on the event loop (a waiter's future, its maximum wait's timer).
- ``loads.py``: the separate bound on concurrent doc loads (rooms/residency.py).

Imports nothing of ours: ``api/`` wires it to the socket endpoints, ``rooms/`` takes the
load bound.
"""
