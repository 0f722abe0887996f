"""The roster file (docs/roster.md): CSV and JSON read into one snapshot; every refusal
says where (CSV line, JSON path) and which field."""

from __future__ import annotations

import json

import pytest

from server.persistence.seed import demo_rows
from server.roster import formats
from server.roster.formats import (
    Group,
    Membership,
    ParentLink,
    Problem,
    RosterFileError,
    School,
    SchoolClass,
    User,
)
from server.types import Role
from tests.roster.rosters import demo_snapshot

HEADER = "kind,id,name,role,school,class,user,room,parent,student\n"

SMALL_CSV = (
    HEADER + "school,demo,Lycée Jean Moulin,,,,,,,\n"
    "class,2nde-a,Seconde A,,demo,,,,,\n"
    "group,2nde-a-g1,Groupe 1,,,2nde-a,,,,\n"
    "user,t-martin,M. Martin,teacher,demo,,,,,\n"
    "user,s-01,Léa,student,demo,,,,,\n"
    "user,p-01,Nadia (parent de Léa),parent,demo,,,,,\n"
    "user,a-admin,Administration,admin,,,,,,\n"
    "membership,,,,,,t-martin,2nde-a,,\n"
    "membership,,,,,,s-01,2nde-a,,\n"
    "membership,,,,,,s-01,2nde-a-g1,,\n"
    "parent_link,,,,,,,,p-01,s-01\n"
)


def problems(data: str | bytes, fmt: formats.Format | None = None, **kw: int) -> list[str]:
    raw = data.encode() if isinstance(data, str) else data
    with pytest.raises(RosterFileError) as caught:
        formats.parse(raw, fmt, **kw)
    return [str(p) for p in caught.value.problems]


def test_a_csv_file_becomes_a_sorted_snapshot() -> None:
    snap = formats.parse(SMALL_CSV.encode())
    assert snap.schools == (School("demo", "Lycée Jean Moulin"),)
    assert snap.classes == (SchoolClass("2nde-a", "demo", "Seconde A"),)
    assert snap.groups == (Group("2nde-a-g1", "2nde-a", "Groupe 1"),)
    assert [u.id for u in snap.users] == ["a-admin", "p-01", "s-01", "t-martin"]
    assert snap.users[0] == User("a-admin", Role.ADMIN, "Administration", None)
    assert snap.memberships == (
        Membership("s-01", "2nde-a"),
        Membership("s-01", "2nde-a-g1"),
        Membership("t-martin", "2nde-a"),
    )
    assert snap.parent_links == (ParentLink("p-01", "s-01"),)


def test_json_csv_and_the_exports_are_the_same_snapshot() -> None:
    snap = formats.parse(SMALL_CSV.encode())
    assert formats.parse(formats.to_json(snap).encode()) == snap
    assert formats.parse(formats.to_csv(snap).encode()) == snap
    assert formats.to_csv(snap) == formats.to_csv(formats.parse(formats.to_csv(snap).encode()))
    assert json.loads(formats.to_json(snap))["version"] == 1


def test_spreadsheet_habits_are_read() -> None:
    """A BOM, semicolons (French Excel), CRLF, columns in any order and cased, cells with
    spaces, quoted commas, blank lines, trailing empty cells left out."""
    text = (
        "\ufeffKind ; ID ; Name;school;ROLE\r\n"
        "school;demo;Lycée Jean Moulin\r\n"
        "\r\n"
        'user ; s-01 ;"Léa; dite ""Lili""";demo;student\r\n'
    )
    snap = formats.parse(text.encode("utf-8"))
    assert snap.users == (User("s-01", Role.STUDENT, 'Léa; dite "Lili"', "demo"),)


def test_the_demo_school_round_trips() -> None:
    snap = demo_snapshot()
    formats.validate(snap)  # the demo roster follows the file's rules
    assert snap.sizes() == {
        "schools": 1,
        "classes": 2,
        "groups": 10,
        "users": 64,
        "memberships": 122,
        "parent_links": 1,
    }
    for fmt in ("csv", "json"):
        text = formats.dump(snap, fmt)
        assert formats.parse(text.encode(), fmt) == snap
    rows = demo_rows()
    assert {u.id for u in snap.users} == {
        r["id"] for rs in rows.values() for r in rs if "role" in r
    }


def test_format_detection() -> None:
    assert formats.detect(b'{"users": []}') == "json"
    assert formats.detect(b'\xef\xbb\xbf\n  {"users": []}') == "json"
    assert formats.detect(b"kind,id\n") == "csv"
    assert formats.detect(b"{", "roster.CSV") == "csv"
    assert formats.detect(b"kind", "roster.json") == "json"


def test_row_errors_name_the_line_and_the_field() -> None:
    bad = (
        HEADER + "school,demo,Lycée,,,,,,,\n"  # line 2: fine
        "user,S 01,Bob,student,demo,,,,,\n"  # line 3
        "user,t-1,Tom,boss,demo,,,,,\n"  # line 4
        "klass,x,y,,,,,,,\n"  # line 5
        "membership,m-1,,,,,s-01,,,\n"  # line 6
        'user,s-9,"Deux\nlignes",student,demo,,,,,\n'  # lines 7-8: one record
        "group,g,,,,,,,,\n"  # line 9
        "school,x,y,,,,,,,,,\n"  # line 10: two cells too many
    )
    assert problems(bad) == [
        "line 3, field 'id': not an id: 'S 01' (1 to 64 of a-z 0-9 - _ . starting with a "
        "letter or digit)",
        "line 4, field 'role': unknown role 'boss' (one of student, teacher, parent, admin)",
        "line 5, field 'kind': unknown kind 'klass' (one of school, class, group, user, "
        "membership, parent_link)",
        "line 6, field 'room': required for a membership",
        "line 6, field 'id': not used by a membership: leave it empty",
        "line 7, field 'name': contains a control character",
        "line 9, field 'class': required for a group",
        "line 9, field 'name': required for a group",
        "line 10: 12 cells, the header has 10",
    ]


def test_header_errors() -> None:
    assert problems("kind,id,nom\n") == [
        "line 1, field 'nom': unknown column (known: kind, id, name, role, school, class, "
        "user, room, parent, student)"
    ]
    assert problems("id,name\nx,y\n") == ["line 1: the header has no 'kind' column"]
    assert problems("kind,id,id\n") == ["line 1, field 'id': column given twice"]


def test_cross_row_errors_name_both_places() -> None:
    bad = (
        HEADER + "school,demo,Lycée,,,,,,,\n"  # 2
        "class,2nde-a,Seconde A,,demo,,,,,\n"  # 3
        "class,1ere-b,Première B,,nowhere,,,,,\n"  # 4
        "group,2nde-a,Groupe 1,,,2nde-a,,,,\n"  # 5: the class's id
        "group,2nde-a-g1,Groupe 1,,,2nde-z,,,,\n"  # 6
        "user,s-01,Léa,student,demo,,,,,\n"  # 7
        "user,s-01,Léa bis,student,demo,,,,,\n"  # 8
        "user,t-1,Prof,teacher,,,,,,\n"  # 9: no school
        "user,p-01,Parent,parent,,,,,,\n"  # 10: fine without one
        "membership,,,,,,s-01,2nde-a-g1,,\n"  # 11: group, not in its class
        "membership,,,,,,p-01,2nde-a,,\n"  # 12: parents are not members
        "membership,,,,,,t-1,2nde-a-g1,,\n"  # 13: teachers are members of classes
        "membership,,,,,,s-02,nowhere,,\n"  # 14
        "membership,,,,,,t-1,2nde-a,,\n"  # 15: fine
        "membership,,,,,,t-1,2nde-a,,\n"  # 16: twice
        "parent_link,,,,,,,,s-01,p-01\n"  # 17: the wrong way round
    )
    assert problems(bad) == [
        "line 5: room id '2nde-a' already given at line 3",
        "line 8: user 's-01' already given at line 7",
        "line 16: membership 't-1' / '2nde-a' already given at line 15",
        "line 4, field 'school': no school 'nowhere' in the file",
        "line 6, field 'class': no class '2nde-z' in the file",
        "line 9, field 'school': required for a teacher",
        "line 11, field 'room': 's-01' is in group '2nde-a-g1' but not in its class '2nde-z'",
        "line 12, field 'user': 'p-01' is a parent: only students and teachers are members",
        "line 13, field 'room': teachers are members of classes (they teach the class's groups)",
        "line 14, field 'user': no user 's-02' in the file",
        "line 14, field 'room': no class or group 'nowhere' in the file",
        "line 17, field 'parent': 's-01' is a student, not a parent",
        "line 17, field 'student': 'p-01' is a parent, not a student",
    ]


def test_json_errors_name_the_path_and_the_field() -> None:
    doc = {
        "version": 1,
        "schools": [{"id": "demo", "name": "Lycée"}],
        "users": [
            {"id": "s-01", "role": "student", "name": "Léa", "school": "demo"},
            {"id": "s-02", "role": "student", "name": 7, "school": "demo"},
            {"id": "s-03", "role": "student", "name": "Hugo", "school": "demo", "age": "15"},
            "s-04",
        ],
        "rooms": [],
        "memberships": {},
    }
    assert problems(json.dumps(doc)) == [
        "rooms: unknown key (known: version, schools, classes, groups, users, memberships, "
        "parent_links)",
        "memberships: expected a list",
        "users[1], field 'name': expected a string, not a number",
        "users[2], field 'age': not a field of user",
        "users[3]: expected an object",
    ]
    assert problems('{"version": 2}') == ["version: unsupported version (this is 1)"]
    assert problems("[1, 2]") == ['$: JSON: expected an object {"schools": [...], ...}']
    assert problems('{\n "schools": [\n  {"id": "a",}\n ]\n}') == [
        "line 3: JSON: Expecting property name enclosed in double quotes (column 14)"
    ]
    cross = {"users": [{"id": "s-01", "role": "student", "name": "Léa", "school": "x"}]}
    assert problems(json.dumps(cross)) == ["users[0], field 'school': no school 'x' in the file"]


def test_bad_bytes_and_csv_quoting() -> None:
    assert problems(HEADER.encode() + b"school,demo,Lyc\xe9e,,,,,,,\n") == [
        "line 2: not UTF-8 text"
    ]
    assert problems(HEADER + 'school,demo,"Lycée,,,,,,,\n') == [
        "line 2: CSV: unexpected end of data"
    ]


def test_bounds() -> None:
    assert problems(SMALL_CSV, max_bytes=100) == [
        f"file of {len(SMALL_CSV.encode())} bytes, over the 100 limit"
    ]
    assert problems(SMALL_CSV, max_rows=5)[-1] == "line 7: more than 5 rows"
    many = HEADER + "".join(f"user,X{i},n,student,,,,,,\n" for i in range(200))
    found = problems(many)
    assert len(found) == formats.MAX_PROBLEMS + 1
    assert found[-1] == "more problems not shown (first 50 above)"


def test_problem_json() -> None:
    p = Problem("required for a group", line=9, field="class")
    assert p.to_json() == {
        "line": 9,
        "path": None,
        "field": "class",
        "message": "required for a group",
    }
