"""Sessions for the inbox: a login trades a token for a signed, HttpOnly, SameSite=Strict cookie.

The cookie holds no token: it names the token by its hash (the same key the token store uses), with
an expiry and a random nonce, signed with ``ALERTS_SESSION_SECRET``. Each request looks the principal
up again through the authenticator, so revoking the token ends its sessions. No server-side state, so
any replica of the alerts service reads any session.

Every state change made with the cookie carries a CSRF token (``X-CSRF-Token``): an HMAC of the
session's nonce, served in the page. A cross-site page can send the cookie (it cannot with
SameSite=Strict, but older browsers ignore it) and still cannot read the page to learn the token.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass

from fastapi import HTTPException, Request, status

from feedback_shared.auth import Authenticator, Principal

COOKIE = "feedback_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Session:
    token_hash: str
    nonce: str
    expires: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Sessions:
    def __init__(self, secret: bytes, max_age_s: int = 8 * 3600, clock: Callable[[], float] = time.time) -> None:
        self.secret = secret
        self.max_age_s = max_age_s
        self.clock = clock

    def _sign(self, purpose: str, payload: str) -> str:
        return _b64(hmac.new(self.secret, f"{purpose}:{payload}".encode(), hashlib.sha256).digest())

    def issue(self, token_hash: str) -> tuple[str, Session]:
        """A new session for the token with ``token_hash``: the cookie value and the session."""
        session = Session(token_hash, secrets.token_urlsafe(16), int(self.clock()) + self.max_age_s)
        payload = _b64(json.dumps({"h": session.token_hash, "n": session.nonce, "e": session.expires}).encode())
        return f"{payload}.{self._sign('session', payload)}", session

    def read(self, value: str | None) -> Session | None:
        """The session a cookie value holds, if it is ours, intact and not expired."""
        if not value or len(value) > 1024 or value.count(".") != 1:
            return None
        payload, signature = value.split(".")
        if not hmac.compare_digest(signature, self._sign("session", payload)):
            return None
        try:
            fields = json.loads(_unb64(payload))
            session = Session(str(fields["h"]), str(fields["n"]), int(fields["e"]))
        except (ValueError, KeyError, TypeError):
            return None
        return session if session.expires > self.clock() else None

    def csrf_token(self, session: Session) -> str:
        return self._sign("csrf", session.nonce)

    def csrf_ok(self, session: Session, supplied: str | None) -> bool:
        return bool(supplied) and hmac.compare_digest(str(supplied), self.csrf_token(session))


def cookie_principal(sessions: Sessions) -> Callable[[Request, Authenticator], Principal | None]:
    """The hook ``feedback_shared.auth.current_principal`` calls when a request has no bearer token:
    the principal of its session cookie; a state change without the session's CSRF token is 403."""

    def principal(request: Request, authenticator: Authenticator) -> Principal | None:
        session = sessions.read(request.cookies.get(COOKIE))
        if session is None:
            return None
        if request.method not in SAFE_METHODS and not sessions.csrf_ok(session, request.headers.get(CSRF_HEADER)):
            raise HTTPException(status.HTTP_403_FORBIDDEN, detail=f"missing or wrong {CSRF_HEADER} for this session")
        request.state.session = session
        return authenticator.by_hash(session.token_hash)

    return principal
