"""Sign-in forms that the server does not remember: a token signed with a key of this process.

The sign-in form needs a CSRF token before anyone has signed in. Kept in a table, every
anonymous visit would add a row, and a flood of `GET /login` would push out the row of the
admin about to sign in. Signed instead, a token costs the server nothing to issue: it carries
when it was issued and a random nonce, and an HMAC over both. The nonce also goes in a cookie
(HttpOnly, SameSite=Strict), so a token is good only in the browser it was issued to; and it
lasts SIGN_IN_FORM_S. A restart makes a new key, and old forms are refused, as sessions are.
"""

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

SIGN_IN_FORM_S = 3600  # long enough to look up a password, short enough to be useless later
KEY_BYTES = 32
NONCE_BYTES = 16


@dataclass(frozen=True)
class SignInForm:
    """What one sign-in form hands out: the nonce for the cookie, the token for the form."""

    nonce: str = field(repr=False)
    token: str = field(repr=False)


class SignInTokens:
    """Issues and checks sign-in form tokens; `clock` is the sessions' monotonic clock."""

    def __init__(self, clock: Callable[[], float], lifetime_s: float = SIGN_IN_FORM_S) -> None:
        self._key = secrets.token_bytes(KEY_BYTES)
        self.clock = clock
        self.lifetime_s = lifetime_s

    def _mac(self, issued: str, nonce: str) -> str:
        return hmac.new(self._key, f"{issued}.{nonce}".encode(), hashlib.sha256).hexdigest()

    def issue(self) -> SignInForm:
        """A new form's nonce and token."""
        issued, nonce = str(int(self.clock())), secrets.token_urlsafe(NONCE_BYTES)
        return SignInForm(nonce, f"{issued}.{nonce}.{self._mac(issued, nonce)}")

    def check(self, nonce: str | None, token: object) -> bool:
        """True for a token this process issued, to the browser holding `nonce`, not too long
        ago. Every comparison takes constant time."""
        if not isinstance(token, str) or not nonce or token.count(".") != 2:
            return False
        issued, token_nonce, mac = token.split(".")
        if not (issued.isascii() and issued.isdigit()) or not hmac.compare_digest(
            mac.encode(), self._mac(issued, token_nonce).encode()
        ):
            return False
        age_s = self.clock() - int(issued)
        return hmac.compare_digest(nonce.encode(), token_nonce.encode()) and (
            -1 <= age_s <= self.lifetime_s
        )
