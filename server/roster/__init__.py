"""Roster management: the ENT's roster file read into one validated snapshot
(formats.py), compared with the database (diff.py) and applied in one transaction
(importer.py). The format is documented in docs/roster.md."""
