"""How a student's name shows to a room under its policy (``persistence/policy.py``).

``full``: the display name. ``initial``: the first name and the initial of the rest
("Léa Martin" → "Léa M."). ``pseudonym``: an animal, a colour and a number ("Loutre
corail 27"), the same for a student in a room every time, another in another room, and
not computable by anyone without the node's key: an HMAC of the room and the user under
a key derived from the JWT secret. ~52,000 combinations: two students of a class share
one with a chance of about 1 %, and still have distinct ids.

Only students are renamed: teachers (and parents, who have no chat) keep their names.
Pure, no I/O.
"""

from __future__ import annotations

import hashlib
import hmac

ANIMALS = (
    "Loutre", "Renard", "Hibou", "Castor", "Hérisson", "Blaireau", "Lynx", "Mouette",
    "Panda", "Koala", "Zèbre", "Dauphin", "Phoque", "Faucon", "Lézard", "Tortue",
    "Pingouin", "Chamois", "Bison", "Héron", "Écureuil", "Manchot", "Colibri", "Girafe",
)  # fmt: skip
#: Colours whose French adjective never agrees: one form for every animal.
COLOURS = (
    "orange", "marron", "turquoise", "indigo", "ocre", "émeraude", "saphir", "cerise",
    "citron", "olive", "lavande", "corail", "ivoire", "ébène", "azur", "prune",
    "sable", "cobalt", "safran", "jade", "rubis", "ardoise", "moutarde", "menthe",
)  # fmt: skip


def pseudonym_key(secret: str) -> bytes:
    """The naming key, apart from the token key (knowing a pseudonym tells nothing of it)."""
    return hmac.new(secret.encode(), b"atelier presence pseudonym v1", hashlib.sha256).digest()


def pseudonym(key: bytes, room_id: str, user_id: str) -> str:
    digest = hmac.new(key, f"{room_id}\0{user_id}".encode(), hashlib.sha256).digest()
    n = int.from_bytes(digest[:8], "big")
    animal, n = ANIMALS[n % len(ANIMALS)], n // len(ANIMALS)
    colour, n = COLOURS[n % len(COLOURS)], n // len(COLOURS)
    return f"{animal} {colour} {10 + n % 90}"


def initial(display_name: str) -> str:
    parts = display_name.split()
    if len(parts) < 2:
        return display_name
    return f"{parts[0]} {parts[1][0].upper()}."


def shown_name(
    policy: str, key: bytes, room_id: str, user_id: str, role: str, display_name: str
) -> str:
    """The name the room shows for this user under ``policy``."""
    if role != "student" or policy == "full":
        return display_name
    if policy == "initial":
        return initial(display_name)
    return pseudonym(key, room_id, user_id)
