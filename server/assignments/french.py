"""French for people and ASCII for machines: dates as a French reader expects them, in
the school's time zone, with no locale dependency ("mardi 8 décembre 2026 à 18:00"),
and the slugs of doc and file names ("Exposé – La photosynthèse" → "expose-la-photosynthese")."""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

MONTHS = (
    "janvier", "février", "mars", "avril", "mai", "juin",
    "juillet", "août", "septembre", "octobre", "novembre", "décembre",
)  # fmt: skip
DAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")


def french_datetime(unix_s: float, tz: str = "Europe/Paris", *, weekday: bool = True) -> str:
    at = datetime.fromtimestamp(unix_s, UTC).astimezone(ZoneInfo(tz))
    day = f"{DAYS[at.weekday()]} " if weekday else ""
    return f"{day}{at.day} {MONTHS[at.month - 1]} {at.year} à {at:%H:%M}"


def parse_due(text: str, tz: str = "Europe/Paris") -> datetime:
    """An ISO 8601 date and time; without an offset it is the school's local time.
    Raises ValueError."""
    value = datetime.fromisoformat(text)
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(tz))
    return value.astimezone(UTC)


def slug(text: str, limit: int = 40, empty: str = "travail") -> str:
    folded = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode().lower()
    cut = re.sub(r"[^a-z0-9]+", "-", folded).strip("-")[:limit].strip("-")
    return cut or empty
