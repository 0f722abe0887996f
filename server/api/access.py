"""Who is calling and what they may do: shared by the WebSocket and REST endpoints."""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import urlsplit

from server.auth import tokens
from server.auth.permissions import archived_group_access, resolve, work_doc_access
from server.context import AppContext
from server.live.names import pseudonym_key, shown_name
from server.persistence import policy
from server.persistence.assignments import DocRule
from server.persistence.roster import RoomInfo, UserInfo
from server.revocation.sockets import Held
from server.types import NO_ACCESS, DocAccess, Role, RoomAccess, RoomKind

_LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]"}


Naming = Callable[[str, str, str], str]


async def naming(ctx: AppContext, room_id: str) -> Naming:
    """How the room shows a user: ``(user_id, role, display_name) → name``, under the
    room's ``presence_names`` policy (one database read)."""
    # Shared with the joins in flight for the room (a class coming back at once): one read.
    names = await ctx.policy_loads.get(room_id, lambda: policy.presence_names(ctx.engine, room_id))
    if names == "full":
        return lambda user_id, role, display_name: display_name
    key = pseudonym_key(ctx.jwt_secret)
    return lambda user_id, role, display_name: shown_name(
        names, key, room_id, user_id, role, display_name
    )


async def authenticate(ctx: AppContext, token: str | None) -> UserInfo:
    """The roster user behind a valid token. Raises ``tokens.InvalidToken``."""
    return (await identify(ctx, token))[0]


async def identify(ctx: AppContext, token: str | None) -> tuple[UserInfo, tokens.Claims]:
    """The roster user behind a valid token, and the token's claims. Raises
    ``tokens.InvalidToken``.

    A token revoked (its ``jti``, or its session: server/revocation/) is refused. A token
    minted by Atelier for a signed-in browser names its session (``sid``): it holds only
    while that session is open (server/sessions/service.py; cached ``SESSION_CHECK_S``, forgotten at
    once on the node that ended it)."""
    claims = await ctx.verifier.verify(token)
    if ctx.revocations.is_revoked(claims.jti, claims.sid):
        raise tokens.InvalidToken("revoked token")
    user_id = claims.user_id
    if (
        claims.own
        and claims.sid is not None
        and not await ctx.sessions.is_open(claims.sid, user_id)
    ):
        raise tokens.InvalidToken("session ended")
    user = await ctx.user_loads.get(
        user_id, lambda: ctx.roster.get_user(user_id), keep=lambda found: found is not None
    )
    if user is None:
        raise tokens.InvalidToken("unknown user")
    return user, claims


async def access_to(
    ctx: AppContext, user: UserInfo, room_id: str
) -> tuple[RoomInfo | None, RoomAccess]:
    return await ctx.access_loads.get((user.id, room_id), lambda: _access_to(ctx, user, room_id))


async def _access_to(
    ctx: AppContext, user: UserInfo, room_id: str
) -> tuple[RoomInfo | None, RoomAccess]:
    room = await ctx.room_loads.get(
        room_id, lambda: ctx.roster.get_room(room_id), keep=lambda found: found is not None
    )
    if room is None:
        result: tuple[RoomInfo | None, RoomAccess] = (None, NO_ACCESS)
    else:
        access = await resolve(
            _Members(ctx), user.id, Role(user.role), room.id, RoomKind(room.kind), room.class_id
        )
        if room.archived:
            access = archived_group_access(Role(user.role), access)
        result = (room, access)
    return result


class _Members:
    """The roster as ``resolve`` asks it, membership read once per room (cached)."""

    __slots__ = ("ctx",)

    def __init__(self, ctx: AppContext) -> None:
        self.ctx = ctx

    async def is_member(self, user_id: str, room_id: str) -> bool:
        roster = self.ctx.roster
        members = await self.ctx.member_loads.get(room_id, lambda: roster.members(room_id))
        return user_id in members

    async def is_parent_of_member(self, parent_id: str, room_id: str) -> bool:
        return await self.ctx.roster.is_parent_of_member(parent_id, room_id)


def _refined(user: UserInfo, room: RoomInfo, access: RoomAccess) -> bool:
    """Only students and parents in class rooms have docs refined by works."""
    return (
        RoomKind(room.kind) is RoomKind.CLASS
        and Role(user.role) in (Role.STUDENT, Role.PARENT)
        and access.may_enter
    )


async def rule_access(
    ctx: AppContext, user: UserInfo, room: RoomInfo, access: RoomAccess
) -> Callable[[DocRule | None], RoomAccess]:
    """The access to each doc of a room, from its rule (None: an ordinary doc): an
    assignment's doc in a class room may be a student's personal work
    (server/auth/permissions.py ``work_doc_access``). The roster is read once."""
    if not _refined(user, room, access):
        return lambda rule: access
    role = Role(user.role)
    children = (
        frozenset(await ctx.roster.children_of(user.id)) if role is Role.PARENT else frozenset()
    )

    def of(rule: DocRule | None) -> RoomAccess:
        if rule is None:
            return access
        return work_doc_access(access, role, RoomKind(room.kind), user.id, rule.owner, children)

    return of


async def doc_access(
    ctx: AppContext, user: UserInfo, room: RoomInfo, access: RoomAccess, doc_name: str
) -> RoomAccess:
    """``access`` refined for one doc (``rule_access``); only students and parents in
    class rooms pay the look-up."""
    if not _refined(user, room, access):
        return access
    rule = await ctx.assignments.store.doc_rule(room.id, doc_name)
    return (await rule_access(ctx, user, room, access))(rule)


async def recheck(ctx: AppContext, held: Held) -> RoomAccess | None:
    """A held socket's access as the roster says now (after ``ctx.forget``), by the same
    rules as at admission (server/api/sockets.py): None when nothing is left."""
    user = await ctx.roster.get_user(held.user_id)
    if user is None:
        return None
    info, access = await access_to(ctx, user, held.room_id)
    if info is None:
        return None
    if held.doc_name is None:
        return access if access.may_enter else None
    access = await doc_access(ctx, user, info, access, held.doc_name)
    return access if access.docs is not DocAccess.NONE else None


def origin_allowed(ctx: AppContext, origin: str | None, host: str) -> bool:
    """Refuse cross-site WebSockets from pages we do not know.

    Non-browser clients send no Origin and are let through: they must present a token
    anyway. Browsers always send one.
    """
    if not origin:
        return True
    allowed = ctx.settings.origins
    if allowed is not None:
        return origin in allowed or "*" in allowed
    parts = urlsplit(origin)
    return parts.netloc == host or (parts.hostname or "") in _LOCAL_HOSTS
