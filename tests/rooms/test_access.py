"""Who may write: a reader's edits never reach the doc (update or sync step 2), and a
lock set on one node makes the students of every node holding the doc read-only."""

from __future__ import annotations

from server.sync.session import READ_ONLY_REASON
from tests.rooms.conftest import DOC, PARENT, ROOM, STUDENT, TEACHER, Cluster, text_of
from tests.support.inproc import until


async def test_a_reader_s_edit_is_refused_and_goes_nowhere(cluster: Cluster) -> None:
    a, b = await cluster.node("A"), await cluster.node("B")
    live = await a.open()
    parent = a.socket(live, "p-01", PARENT)
    student = a.socket(live, "s-01", STUDENT)
    on_b = b.socket(await b.open(), "t-01", TEACHER)

    parent.type("gribouillis")

    assert parent.denied == [READ_ONLY_REASON]
    assert text_of(live) == ""
    assert student.content == ""
    # The next edit, the student's, reaches B alone: the refused one went nowhere.
    student.type("devoir")
    await until(lambda: on_b.content == "devoir", "the student's edit reaches B")
    await a.flush()
    assert (await cluster.stored()).updates == student.sent


async def test_a_reader_s_offline_edits_in_sync_step_2_are_refused_too(cluster: Cluster) -> None:
    a = await cluster.node("A")
    live = await a.open()

    parent = a.socket(live, "p-01", PARENT, offline="écrit hors ligne")

    assert parent.denied == [READ_ONLY_REASON]
    assert text_of(live) == ""
    await a.flush()
    assert (await cluster.stored()).updates == []


async def test_a_lock_set_on_a_makes_the_students_on_b_read_only_now(cluster: Cluster) -> None:
    a, b = await cluster.node("A"), await cluster.node("B")
    told: list[tuple[str, str, bool, str]] = []
    a.registry.on_lock = lambda *lock: told.append(lock)
    live_a, live_b = await a.open(), await b.open()
    student_a = a.socket(live_a, "s-01", STUDENT)
    student_b = b.socket(live_b, "s-02", STUDENT)
    teacher_b = b.socket(live_b, "t-01", TEACHER)

    await a.registry.set_locked(ROOM, DOC, True, "t-martin")

    assert told == [(ROOM, DOC, True, "t-martin")]
    assert live_a.locked
    assert (await cluster.stored()).locked
    await until(lambda: live_b.locked, "the lock reaches B")
    student_b.type("pendant le contrôle")
    student_a.type("moi aussi")
    assert student_b.denied == [READ_ONLY_REASON]
    assert student_a.denied == [READ_ONLY_REASON]
    assert text_of(live_b) == "" and text_of(live_a) == ""
    teacher_b.type("Corrigé")  # teachers are not bound by locks
    await until(lambda: text_of(live_a) == "Corrigé", "the teacher's edit reaches A")

    await a.registry.set_locked(ROOM, DOC, False, "t-martin")
    await until(lambda: not live_b.locked, "the unlock reaches B")
    b.socket(live_b, "s-03", STUDENT).type(" !")  # (s-02's client still holds its refused text)
    await until(lambda: text_of(live_a) == "Corrigé !", "the student writes again")
