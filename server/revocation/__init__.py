"""Live revocation: when someone loses access, their open sockets learn it on every node
within a bus round trip, and their tokens stop working before they expire."""
