"""Data protection (RGPD): one person's export, their erasure, retention per data class.

The SQL lives in server/persistence/ (personal.py, retention.py); this package decides
what goes in an export, runs an erasure across nodes, and runs retention once across
nodes. See the README's "Données personnelles" section for the data classes.
"""
