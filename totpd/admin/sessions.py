"""Server-side sessions for the admin page: a random id in a cookie, everything else here.

A session holds its CSRF token (the synchronizer token every form carries), whether it is
signed in, and one-shot messages for the next page. It ends after `idle_s` without a request,
after `lifetime_s` in any case, at sign-out, or when the admin password changes. Sessions live
in this process only: a restart signs everyone out.
"""

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

from totpd.files import FileVersion

LIFETIME_S = 12 * 3600
MAX_SESSIONS = 256
TOKEN_BYTES = 32


class Tone(StrEnum):
    """How a message on the page reads: good news or a problem."""

    OK = "ok"
    ERROR = "error"


@dataclass(frozen=True)
class Notice:
    """One message shown once on the next page."""

    tone: Tone
    text: str


@dataclass
class Session:
    """One browser's session. `password_version` is set while signed in."""

    id: str = field(repr=False)
    csrf_token: str = field(repr=False)
    created_s: float
    last_seen_s: float
    password_version: FileVersion | None = None
    notices: list[Notice] = field(default_factory=list)

    @property
    def signed_in(self) -> bool:
        """True after a successful sign-in."""
        return self.password_version is not None

    def csrf_matches(self, token: str | None) -> bool:
        """True when a form carried this session's token (compared in constant time)."""
        return token is not None and hmac.compare_digest(token.encode(), self.csrf_token.encode())

    def tell(self, tone: Tone, text: str) -> None:
        """Queue a message for the next page this session sees."""
        self.notices.append(Notice(tone, text))

    def take_notices(self) -> list[Notice]:
        """The queued messages, once."""
        taken, self.notices = self.notices, []
        return taken


class SessionStore:
    """Sessions by id, with idle and absolute expiry; the oldest go first when it is full."""

    def __init__(
        self,
        idle_s: float,
        lifetime_s: float = LIFETIME_S,
        clock: Callable[[], float] = time.monotonic,
        max_sessions: int = MAX_SESSIONS,
    ) -> None:
        self.idle_s = idle_s
        self.lifetime_s = lifetime_s
        self.clock = clock
        self.max_sessions = max_sessions
        self._sessions: dict[str, Session] = {}

    def _expired(self, session: Session, now_s: float) -> bool:
        return (
            now_s - session.last_seen_s > self.idle_s or now_s - session.created_s > self.lifetime_s
        )

    def new(self, password_version: FileVersion | None = None) -> Session:
        """A fresh session with new random id and CSRF token."""
        now_s = self.clock()
        self._sessions = {i: s for i, s in self._sessions.items() if not self._expired(s, now_s)}
        while len(self._sessions) >= self.max_sessions:
            # A flood of anonymous visits must not push a signed-in admin out: the oldest
            # anonymous session goes first (dicts keep insertion order).
            anonymous = (i for i, s in self._sessions.items() if not s.signed_in)
            del self._sessions[next(anonymous, next(iter(self._sessions)))]
        session = Session(
            id=secrets.token_urlsafe(TOKEN_BYTES),
            csrf_token=secrets.token_urlsafe(TOKEN_BYTES),
            created_s=now_s,
            last_seen_s=now_s,
            password_version=password_version,
        )
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        """The live session with this id, now marked as just used; None if unknown or expired."""
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now_s = self.clock()
        if self._expired(session, now_s):
            del self._sessions[session_id]
            return None
        session.last_seen_s = now_s
        return session

    def end(self, session: Session) -> None:
        """Forget a session (sign-out, or replaced at sign-in)."""
        self._sessions.pop(session.id, None)

    def __len__(self) -> int:
        return len(self._sessions)
