"""The roster file (docs/roster.md): CSV or JSON in, one normalized snapshot out.

Parsing is all or nothing: any problem refuses the whole file, and the problems say where
(CSV: the line; JSON: the path, like ``users[3]``) and which field. A file is read in two
passes: each row alone (kind, ids, names, roles), then the rows together (duplicates,
references, the rules of who may be a member of what). Both passes stop after
``MAX_PROBLEMS`` problems: a file with a shifted column says so a few times, not 100,000.

The snapshot is the whole roster: what is not in the file is not in the roster after the
import (server/roster/diff.py). It is pure data (frozen dataclasses, sorted by id), equal
whether it came from CSV, from JSON, or from the database (server/roster/importer.py).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from server.types import Role

Format = Literal["csv", "json"]

#: Ids of every kind: short lowercase slugs (``2nde-a``, ``2nde-a-g1``, ``s-01``). They
#: become Atelier's ids as they are: room ids, token subjects, URL path segments.
ID_RE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
ID_RULE = "1 to 64 of a-z 0-9 - _ . starting with a letter or digit"
NAME_MAX = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

#: Defaults of the bounds (server/config.py ``roster_max_bytes`` / ``roster_max_rows``).
MAX_BYTES = 64 * 1024 * 1024
MAX_ROWS = 2_000_000
MAX_PROBLEMS = 50

JSON_VERSION = 1

#: CSV ``kind`` → JSON list.
KINDS: dict[str, str] = {
    "school": "schools",
    "class": "classes",
    "group": "groups",
    "user": "users",
    "membership": "memberships",
    "parent_link": "parent_links",
}
#: kind → (required fields, optional fields). A field not listed for a kind must be empty.
FIELDS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "school": (("id", "name"), ()),
    "class": (("id", "school", "name"), ()),
    "group": (("id", "class", "name"), ()),
    "user": (("id", "role", "name"), ("school",)),
    "membership": (("user", "room"), ()),
    "parent_link": (("parent", "student"), ()),
}
#: The CSV columns, in the order the export writes them.
COLUMNS = ("kind", "id", "name", "role", "school", "class", "user", "room", "parent", "student")
_ID_FIELDS = frozenset({"id", "school", "class", "user", "room", "parent", "student"})
_ROLES = {r.value: r for r in Role}


# --- the snapshot -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class School:
    id: str
    name: str


@dataclass(frozen=True, slots=True)
class SchoolClass:
    """A class; its id is its room's id."""

    id: str
    school_id: str
    name: str


@dataclass(frozen=True, slots=True)
class Group:
    """A project group of a class; its id is its room's id."""

    id: str
    class_id: str
    name: str


@dataclass(frozen=True, slots=True)
class User:
    id: str
    role: Role
    name: str
    school_id: str | None = None


@dataclass(frozen=True, slots=True, order=True)
class Membership:
    user_id: str
    room_id: str


@dataclass(frozen=True, slots=True, order=True)
class ParentLink:
    parent_id: str
    student_id: str


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A whole roster, each kind sorted by its key."""

    schools: tuple[School, ...] = ()
    classes: tuple[SchoolClass, ...] = ()
    groups: tuple[Group, ...] = ()
    users: tuple[User, ...] = ()
    memberships: tuple[Membership, ...] = ()
    parent_links: tuple[ParentLink, ...] = ()

    def sizes(self) -> dict[str, int]:
        return {kind: len(getattr(self, kind)) for kind in KINDS.values()}


def snapshot(
    schools: Iterable[School] = (),
    classes: Iterable[SchoolClass] = (),
    groups: Iterable[Group] = (),
    users: Iterable[User] = (),
    memberships: Iterable[Membership] = (),
    parent_links: Iterable[ParentLink] = (),
) -> Snapshot:
    """A snapshot of these rows, sorted (no validation: see ``validate``)."""
    return Snapshot(
        schools=tuple(sorted(schools, key=lambda r: r.id)),
        classes=tuple(sorted(classes, key=lambda r: r.id)),
        groups=tuple(sorted(groups, key=lambda r: r.id)),
        users=tuple(sorted(users, key=lambda r: r.id)),
        # Key tuples, not the dataclasses' own order: compared in C, not in Python.
        memberships=tuple(sorted(memberships, key=lambda m: (m.user_id, m.room_id))),
        parent_links=tuple(sorted(parent_links, key=lambda p: (p.parent_id, p.student_id))),
    )


# --- problems -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a file is refused: where (CSV line, JSON path), which field, what."""

    message: str
    line: int | None = None
    path: str | None = None
    field: str | None = None

    def __str__(self) -> str:
        where = [f"line {self.line}"] if self.line is not None else []
        if self.path is not None:
            where.append(self.path)
        if self.field is not None:
            where.append(f"field {self.field!r}")
        return f"{', '.join(where)}: {self.message}" if where else self.message

    def to_json(self) -> dict[str, Any]:
        return {"line": self.line, "path": self.path, "field": self.field, "message": self.message}


class RosterFileError(ValueError):
    """The file is refused; ``problems`` says why (at most ``MAX_PROBLEMS`` and a last
    one saying there were more)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = tuple(problems)
        shown = "; ".join(str(p) for p in self.problems[:5])
        more = f" (+{len(self.problems) - 5} more)" if len(self.problems) > 5 else ""
        super().__init__(f"roster file refused: {shown}{more}")


class _TooMany(Exception):
    pass


@dataclass
class _Problems:
    found: list[Problem] = field(default_factory=list)

    def add(self, problem: Problem) -> None:
        if len(self.found) >= MAX_PROBLEMS:
            self.found.append(Problem(f"more problems not shown (first {MAX_PROBLEMS} above)"))
            raise _TooMany
        self.found.append(problem)

    def at(self, where: _Where, message: str, field: str | None = None) -> None:
        if isinstance(where, int):
            self.add(Problem(message, line=where, field=field))
        else:
            self.add(Problem(message, path=where, field=field))


#: Where a row is: its CSV line (int) or its JSON path (str, like ``users[3]``). A plain
#: value, not an object: a region's file has hundreds of thousands of rows.
_Where = int | str


def _place(where: _Where) -> str:
    return f"line {where}" if isinstance(where, int) else where


#: One row before validation: where it is, its kind, its non-empty fields.
_Row = tuple[_Where, str, dict[str, str]]


# --- entry points -------------------------------------------------------------------


def detect(data: bytes, filename: str | None = None) -> Format:
    """The format of a file: by its name's extension, else JSON if it starts with { or [."""
    if filename:
        lowered = filename.lower()
        if lowered.endswith(".json"):
            return "json"
        if lowered.endswith(".csv"):
            return "csv"
    head = data[:64].lstrip(b"\xef\xbb\xbf \t\r\n")
    return "json" if head[:1] in (b"{", b"[") else "csv"


def parse(
    data: bytes,
    fmt: Format | None = None,
    *,
    max_bytes: int = MAX_BYTES,
    max_rows: int = MAX_ROWS,
) -> Snapshot:
    """The snapshot of a roster file, or ``RosterFileError``."""
    if len(data) > max_bytes:
        raise RosterFileError([Problem(f"file of {len(data)} bytes, over the {max_bytes} limit")])
    problems = _Problems()
    text = _decode(data, problems)
    if text is None:
        raise RosterFileError(problems.found)
    fmt = fmt or detect(data)
    try:
        rows = _csv_rows(text, problems) if fmt == "csv" else _json_rows(text, problems)
        checked = _rows(rows, problems, max_rows)
        result = _validate(checked, problems) if not problems.found else None
    except _TooMany:
        result = None
    if problems.found or result is None:
        raise RosterFileError(problems.found)
    return result


def validate(snap: Snapshot) -> None:
    """Check a snapshot made in code (the demo school, a test) by the file's rules."""
    rows: list[_Row] = []
    for kind, items in _snapshot_rows(snap):
        for i, fields in enumerate(items):
            rows.append((f"{KINDS[kind]}[{i}]", kind, fields))
    problems = _Problems()
    try:
        _validate(_rows(iter(rows), problems, MAX_ROWS), problems)
    except _TooMany:
        pass
    if problems.found:
        raise RosterFileError(problems.found)


def _decode(data: bytes, problems: _Problems) -> str | None:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        problems.found.append(Problem("not UTF-8 text", line=line))
        return None
    return text.removeprefix("\ufeff")  # a spreadsheet's byte order mark


# --- pass 1: rows one by one --------------------------------------------------------


def _csv_rows(text: str, problems: _Problems) -> Iterator[_Row]:
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header_cells = next(reader, None)
    except csv.Error as exc:
        problems.add(Problem(f"CSV: {exc}", line=1))
        return
    if header_cells is None:
        return
    header = [c.strip().lower() for c in header_cells]
    bad = False
    for i, name in enumerate(header):
        if name not in COLUMNS:
            problems.add(Problem(f"unknown column (known: {', '.join(COLUMNS)})", 1, None, name))
            bad = True
        elif name in header[:i]:
            problems.add(Problem("column given twice", line=1, field=name))
            bad = True
    if "kind" not in header:
        problems.add(Problem("the header has no 'kind' column", line=1))
        bad = True
    if bad:
        return
    width = len(header)
    line = reader.line_num
    while True:
        start = line + 1
        try:
            cells = next(reader, None)
        except csv.Error as exc:
            problems.add(Problem(f"CSV: {exc}", line=reader.line_num))
            return
        if cells is None:
            return
        line = reader.line_num
        where = start
        if len(cells) > width:
            problems.at(where, f"{len(cells)} cells, the header has {width}")
            continue
        fields = {n: v for n, c in zip(header, cells, strict=False) if (v := c.strip())}
        if not fields:
            continue  # a blank line
        kind = fields.pop("kind", "")
        if kind not in KINDS:
            problems.at(where, _kind_message(kind), "kind")
            continue
        yield where, kind, fields


def _kind_message(kind: str) -> str:
    if not kind:
        return f"empty (one of {', '.join(KINDS)})"
    return f"unknown kind {kind!r} (one of {', '.join(KINDS)})"


def _json_rows(text: str, problems: _Problems) -> Iterator[_Row]:
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        problems.add(Problem(f"JSON: {exc.msg} (column {exc.colno})", line=exc.lineno))
        return
    except RecursionError:
        problems.add(Problem("JSON: nested too deep"))
        return
    if not isinstance(doc, dict):
        problems.add(Problem('JSON: expected an object {"schools": [...], ...}', path="$"))
        return
    lists = {plural: kind for kind, plural in KINDS.items()}
    for key, value in doc.items():
        if key == "version":
            if value != JSON_VERSION:
                problems.add(Problem(f"unsupported version (this is {JSON_VERSION})", path=key))
        elif key not in lists:
            known = ", ".join(["version", *lists])
            problems.add(Problem(f"unknown key (known: {known})", path=key))
        elif not isinstance(value, list):
            problems.add(Problem("expected a list", path=key))
    for key, kind in lists.items():
        items = doc.get(key)
        if not isinstance(items, list):
            continue
        allowed = set(FIELDS[kind][0]) | set(FIELDS[kind][1])
        for i, item in enumerate(items):
            where = f"{key}[{i}]"
            if not isinstance(item, dict):
                problems.at(where, "expected an object")
                continue
            fields = {}
            ok = True
            for name, value in item.items():
                if name not in allowed:
                    problems.at(where, f"not a field of {kind}", str(name))
                    ok = False
                elif value is None:
                    continue
                elif not isinstance(value, str):
                    problems.at(where, f"expected a string, not {_json_type(value)}", name)
                    ok = False
                elif value.strip():
                    fields[name] = value.strip()
            if ok:  # else its problems are said; "required" would only repeat them
                yield where, kind, fields


def _json_type(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, dict) else type(value).__name__


@dataclass
class _Checked:
    """Rows that passed pass 1, with where each one is."""

    schools: list[tuple[_Where, School]] = field(default_factory=list)
    classes: list[tuple[_Where, SchoolClass]] = field(default_factory=list)
    groups: list[tuple[_Where, Group]] = field(default_factory=list)
    users: list[tuple[_Where, User]] = field(default_factory=list)
    memberships: list[tuple[_Where, Membership]] = field(default_factory=list)
    parent_links: list[tuple[_Where, ParentLink]] = field(default_factory=list)


_NAME_OK = re.compile(rf"[^\x00-\x1f\x7f]{{1,{NAME_MAX}}}")
_K_MEMBERSHIP = frozenset(("user", "room"))
_K_LINK = frozenset(("parent", "student"))
_K_USER = frozenset(("id", "role", "name"))
_K_USER_SCHOOL = frozenset(("id", "role", "name", "school"))
_K_GROUP = frozenset(("id", "class", "name"))
_K_CLASS = frozenset(("id", "school", "name"))
_K_SCHOOL = frozenset(("id", "name"))


def _rows(rows: Iterator[_Row], problems: _Problems, max_rows: int) -> _Checked:
    """Pass 1. Each kind has a fast check of a good row (a region's file has hundreds of
    thousands); a row that fails it is examined field by field (``_row_problems``)."""
    out = _Checked()
    is_id = ID_RE.fullmatch
    is_name = _NAME_OK.fullmatch
    memberships, users, links = out.memberships, out.users, out.parent_links
    count = 0
    for where, kind, f in rows:
        count += 1
        if count > max_rows:
            problems.at(where, f"more than {max_rows} rows")
            raise _TooMany
        keys = f.keys()
        if kind == "membership":
            if keys == _K_MEMBERSHIP and is_id(f["user"]) and is_id(f["room"]):
                memberships.append((where, Membership(f["user"], f["room"])))
                continue
        elif kind == "user":
            school = f.get("school")
            if (
                (keys == _K_USER or keys == _K_USER_SCHOOL)
                and is_id(f["id"])
                and is_name(f["name"])
                and f["role"] in _ROLES
                and (school is None or is_id(school))
            ):
                users.append((where, User(f["id"], _ROLES[f["role"]], f["name"], school)))
                continue
        elif kind == "parent_link":
            if keys == _K_LINK and is_id(f["parent"]) and is_id(f["student"]):
                links.append((where, ParentLink(f["parent"], f["student"])))
                continue
        elif kind == "group":
            if keys == _K_GROUP and is_id(f["id"]) and is_id(f["class"]) and is_name(f["name"]):
                out.groups.append((where, Group(f["id"], f["class"], f["name"])))
                continue
        elif kind == "class":
            if keys == _K_CLASS and is_id(f["id"]) and is_id(f["school"]) and is_name(f["name"]):
                out.classes.append((where, SchoolClass(f["id"], f["school"], f["name"])))
                continue
        elif keys == _K_SCHOOL and is_id(f["id"]) and is_name(f["name"]):
            out.schools.append((where, School(f["id"], f["name"])))
            continue
        _row_problems(where, kind, f, problems)
    return out


def _row_problems(where: _Where, kind: str, fields: dict[str, str], problems: _Problems) -> None:
    """Why a row failed pass 1's fast check, field by field."""
    required, optional = FIELDS[kind]
    for name in required:
        if name not in fields:
            problems.at(where, f"required for a {kind}", name)
    for name, value in fields.items():
        if name not in required and name not in optional:
            problems.at(where, f"not used by a {kind}: leave it empty", name)
        elif name in _ID_FIELDS:
            if not ID_RE.fullmatch(value):
                problems.at(where, f"not an id: {value!r} ({ID_RULE})", name)
        elif name == "name":
            if len(value) > NAME_MAX:
                problems.at(where, f"longer than {NAME_MAX} characters", name)
            elif _CONTROL.search(value):
                problems.at(where, "contains a control character", name)
        elif name == "role" and value not in _ROLES:
            roles = ", ".join(_ROLES)
            problems.at(where, f"unknown role {value!r} (one of {roles})", name)


# --- pass 2: the rows together ------------------------------------------------------


def _unique(
    items: list[tuple[_Where, Any]],
    key: Any,
    what: str,
    problems: _Problems,
    seen: dict[Any, _Where],
) -> None:
    for where, item in items:
        k = key(item)
        first = seen.get(k)
        if first is not None:
            problems.at(where, f"{what} {_show(k)} already given at {_place(first)}")
        else:
            seen[k] = where


def _show(key: object) -> str:
    return " / ".join(map(repr, key)) if isinstance(key, tuple) else repr(key)


def _validate(c: _Checked, problems: _Problems) -> Snapshot:
    school_at: dict[str, _Where] = {}
    _unique(c.schools, lambda s: s.id, "school", problems, school_at)
    room_at: dict[str, _Where] = {}  # classes and groups share the room namespace
    _unique(c.classes, lambda s: s.id, "room id", problems, room_at)
    _unique(c.groups, lambda s: s.id, "room id", problems, room_at)
    user_at: dict[str, _Where] = {}
    _unique(c.users, lambda s: s.id, "user", problems, user_at)
    _unique(c.memberships, lambda m: (m.user_id, m.room_id), "membership", problems, {})
    _unique(c.parent_links, lambda p: (p.parent_id, p.student_id), "parent link", problems, {})

    class_ids = {k.id for _, k in c.classes}
    class_of = {g.id: g.class_id for _, g in c.groups}
    role_of = {u.id: u.role for _, u in c.users}
    for where, k in c.classes:
        if k.school_id not in school_at:
            problems.at(where, f"no school {k.school_id!r} in the file", "school")
    for where, g in c.groups:
        if g.class_id not in class_ids:
            problems.at(where, f"no class {g.class_id!r} in the file", "class")
    for where, u in c.users:
        if u.school_id is None:
            if u.role in (Role.STUDENT, Role.TEACHER):
                problems.at(where, f"required for a {u.role.value}", "school")
        elif u.school_id not in school_at:
            problems.at(where, f"no school {u.school_id!r} in the file", "school")

    members = {(m.user_id, m.room_id) for _, m in c.memberships}
    for where, m in c.memberships:
        role = role_of.get(m.user_id)
        if role is None:
            problems.at(where, f"no user {m.user_id!r} in the file", "user")
        elif role not in (Role.STUDENT, Role.TEACHER):
            message = f"{m.user_id!r} is a {role.value}: only students and teachers are members"
            problems.at(where, message, "user")
        if m.room_id in class_ids:
            continue
        group_class = class_of.get(m.room_id)
        if group_class is None:
            problems.at(where, f"no class or group {m.room_id!r} in the file", "room")
        elif role is Role.TEACHER:
            message = "teachers are members of classes (they teach the class's groups)"
            problems.at(where, message, "room")
        elif role is Role.STUDENT and (m.user_id, group_class) not in members:
            message = (
                f"{m.user_id!r} is in group {m.room_id!r} but not in its class {group_class!r}"
            )
            problems.at(where, message, "room")
    for where, p in c.parent_links:
        for name, uid, role in (
            ("parent", p.parent_id, Role.PARENT),
            ("student", p.student_id, Role.STUDENT),
        ):
            found = role_of.get(uid)
            if found is None:
                problems.at(where, f"no user {uid!r} in the file", name)
            elif found is not role:
                problems.at(where, f"{uid!r} is a {found.value}, not a {role.value}", name)
    return snapshot(
        (s for _, s in c.schools),
        (k for _, k in c.classes),
        (g for _, g in c.groups),
        (u for _, u in c.users),
        (m for _, m in c.memberships),
        (p for _, p in c.parent_links),
    )


# --- writing ------------------------------------------------------------------------


def _snapshot_rows(snap: Snapshot) -> Iterator[tuple[str, list[dict[str, str]]]]:
    """Each kind's rows as the file's fields (optional ones left out when empty)."""
    yield "school", [{"id": s.id, "name": s.name} for s in snap.schools]
    yield "class", [{"id": k.id, "school": k.school_id, "name": k.name} for k in snap.classes]
    yield "group", [{"id": g.id, "class": g.class_id, "name": g.name} for g in snap.groups]
    users = []
    for u in snap.users:
        row = {"id": u.id, "role": u.role.value, "name": u.name}
        if u.school_id is not None:
            row["school"] = u.school_id
        users.append(row)
    yield "user", users
    yield "membership", [{"user": m.user_id, "room": m.room_id} for m in snap.memberships]
    yield (
        "parent_link",
        [{"parent": p.parent_id, "student": p.student_id} for p in snap.parent_links],
    )


def to_csv(snap: Snapshot) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for kind, rows in _snapshot_rows(snap):
        for row in rows:
            writer.writerow([kind if c == "kind" else row.get(c, "") for c in COLUMNS])
    return out.getvalue()


def to_json(snap: Snapshot) -> str:
    """The JSON form, one row per line (readable, and diffs well between two exports)."""
    parts = [f'{{"version": {JSON_VERSION}']
    for kind, rows in _snapshot_rows(snap):
        items = ",\n".join("  " + json.dumps(r, ensure_ascii=False) for r in rows)
        parts.append(f' "{KINDS[kind]}": [\n{items}\n ]' if rows else f' "{KINDS[kind]}": []')
    return ",\n".join(parts) + "\n}\n"


def dump(snap: Snapshot, fmt: Format) -> str:
    return to_csv(snap) if fmt == "csv" else to_json(snap)
