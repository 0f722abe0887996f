"""Settings, tokens and the permission table, row by row."""

from __future__ import annotations

import stat
from pathlib import Path

import jwt
import pytest

from server.auth import tokens
from server.auth.permissions import Relation, room_access
from server.config import Settings
from server.logs import redact
from server.types import DocAccess, Role, RoomKind


def test_generated_secret_is_kept_private_and_reused(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", jwt_secret=None)
    first = settings.resolved_jwt_secret()
    assert len(first) >= 48
    path = tmp_path / "data" / "jwt_secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert Settings(data_dir=tmp_path / "data", jwt_secret=None).resolved_jwt_secret() == first


def test_tokens_require_exp_and_sub_and_the_right_key() -> None:
    secret = "k" * 40
    assert tokens.verify(secret, tokens.issue(secret, "s-01")) == "s-01"
    no_exp = jwt.encode({"sub": "s-01"}, secret, "HS256")
    with pytest.raises(tokens.InvalidToken):
        tokens.verify(secret, no_exp)
    with pytest.raises(tokens.InvalidToken, match="expired"):
        tokens.verify(secret, tokens.issue(secret, "s-01", ttl_s=-60))
    with pytest.raises(tokens.InvalidToken):
        tokens.verify(secret, tokens.issue("other" * 10, "s-01"))
    none_alg = jwt.encode({"sub": "s-01", "exp": 4102444800}, None, "none")
    with pytest.raises(tokens.InvalidToken):
        tokens.verify(secret, none_alg)


def test_redaction_of_tokens_in_log_lines() -> None:
    line = 'GET /yjs/r/d?token=eyJabc.def.ghi&x=1 "Authorization: Bearer eyJabc.def.ghi"'
    clean = redact(line)
    assert "eyJabc" not in clean and "token=[redacted]&x=1" in clean


@pytest.mark.parametrize(
    ("line", "secrets_in_it"),
    [
        ("GET /yjs/r/d?TOKEN=eyJabc.def", ["eyJabc"]),
        ("authorization: BEARER eyJabc.def", ["eyJabc"]),
        ("GET /auth/callback?Code=one-time&STATE=xyz", ["one-time", "xyz"]),
        ("GET /a?token=t1&code=c1 Bearer b1.b2", ["t1", "c1", "b1.b2"]),
    ],
)
def test_redaction_whatever_the_case_and_the_mix(line: str, secrets_in_it: list[str]) -> None:
    # Each pattern runs only where its literal appears: the check ignores case as the
    # patterns do, and one substitution never hides another's literal.
    clean = redact(line)
    for secret in secrets_in_it:
        assert secret not in clean, (line, clean)
    assert clean.count("[redacted]") == len(secrets_in_it)
    assert redact("GET /healthz 200") == "GET /healthz 200"


G, C = RoomKind.GROUP, RoomKind.CLASS


@pytest.mark.parametrize(
    ("role", "kind", "rel", "docs", "chat", "moderate", "lock"),
    [
        (Role.STUDENT, G, Relation(member=True), DocAccess.WRITE, True, False, False),
        (Role.STUDENT, C, Relation(member=True), DocAccess.READ, True, False, False),
        (Role.STUDENT, G, Relation(), DocAccess.NONE, False, False, False),
        (Role.TEACHER, G, Relation(teaches=True), DocAccess.WRITE, True, True, True),
        (Role.TEACHER, C, Relation(teaches=True), DocAccess.WRITE, True, True, False),
        (Role.TEACHER, C, Relation(), DocAccess.NONE, False, False, False),
        (Role.PARENT, C, Relation(parent_of_member=True), DocAccess.READ, False, False, False),
        (Role.PARENT, G, Relation(parent_of_member=True), DocAccess.NONE, False, False, False),
        (Role.ADMIN, C, Relation(member=True, teaches=True), DocAccess.NONE, False, False, False),
    ],
)
def test_permission_table(
    role: Role,
    kind: RoomKind,
    rel: Relation,
    docs: DocAccess,
    chat: bool,
    moderate: bool,
    lock: bool,
) -> None:
    access = room_access(role, kind, rel)
    assert (access.docs, access.chat, access.moderate, access.lock) == (docs, chat, moderate, lock)


def test_locks_bind_students_not_teachers() -> None:
    student = room_access(Role.STUDENT, G, Relation(member=True))
    teacher = room_access(Role.TEACHER, G, Relation(teaches=True))
    assert student.doc_access(locked=True) is DocAccess.READ
    assert teacher.doc_access(locked=True) is DocAccess.WRITE
