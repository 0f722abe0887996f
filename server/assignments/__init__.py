"""Assignments: the teacher's consigne, group work, the rendu at the deadline, feedback."""
