"""Who is calling: principals, their roles, and the tokens that prove them.

Every route of every service needs a principal, except the probes (``/healthz``, ``/readyz``) and
``/metrics`` where an operator makes it public. A principal comes from a bearer token
(``Authorization: Bearer fbt_…``) or, in the alerts inbox, from a signed session cookie that names
one (``feedback_shared.sessions``).

Tokens are created by ``feedbackctl tokens create`` and stored hashed (SHA-256 of the token: the token
carries 256 random bits, so a slow password hash adds nothing) in the ``tokens`` collection of the
shared ``auth`` database, which every service reads. A token looks like ``fbt_<token id>_<secret>``;
the id, which is not secret, names it in lists and in ``feedbackctl tokens revoke``. Lookups are
cached for ``AuthSettings.cache_ttl_s``, so a revoked token stops working within that time, and a
burst of requests does not cost a database round trip each.

Static tokens from ``<PREFIX>API_KEYS`` (``dev-key`` in development) are admin principals: the
bootstrap before any token exists, refused outside development when they are placeholders.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Annotated, Any, Literal, Protocol

from fastapi import Depends, HTTPException, Request, Security, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field

from feedback_shared.errors import DependencyUnavailable
from feedback_shared.query import refuse_unknown_query

Role = Literal["admin", "manager", "csm", "integration", "reader"]
ROLES: tuple[Role, ...] = ("admin", "manager", "csm", "integration", "reader")

#: What each role may do. ``admin`` may do everything. A CSM's reads and actions are further limited to
#: its own cases and the fallback queue's (the alerts service filters on ``Principal.csm_id``); an
#: integration's writes to its ``sources``, and purchases and returns to those with ``commerce``.
PERMISSIONS: dict[Role, frozenset[str]] = {
    "admin": frozenset({"*"}),
    "manager": frozenset({"cases.read", "cases.read_all", "cases.act", "escalations", "loyalty.read",
                          "loyalty.redeem", "score", "insights.read", "metrics.read"}),
    # Not insights.read: the drill-down quotes every customer, and a CSM sees only its own cases.
    "csm": frozenset({"cases.read", "cases.act", "loyalty.read", "score"}),
    "integration": frozenset({"ingest.write", "loyalty.read", "loyalty.redeem", "score"}),
    "reader": frozenset({"insights.read", "metrics.read"}),
}
#: Permissions only an admin has: named here so a route can ask for them by name.
ADMIN_ONLY = frozenset({"directory.write", "tokens", "erasure", "pages.requeue"})

TOKEN_PREFIX = "fbt_"  # noqa: S105 (a prefix, not a secret)


class Principal(BaseModel):
    """An authenticated caller."""

    model_config = ConfigDict(frozen=True)

    token_id: str
    role: Role
    name: str = ""
    #: For role ``csm``: the CSM this token acts as.
    csm_id: str | None = None
    #: For role ``integration``: the sources it may write for (empty: any).
    sources: tuple[str, ...] = ()
    #: For role ``integration``: whether it may send purchases and returns.
    commerce: bool = False

    def can(self, permission: str) -> bool:
        granted = PERMISSIONS[self.role]
        return "*" in granted or permission in granted

    def may_write_source(self, source: str) -> bool:
        return self.role == "admin" or not self.sources or source in self.sources

    @property
    def sees_all_cases(self) -> bool:
        return self.can("cases.read_all")


class TokenRecord(BaseModel):
    """A stored token: its principal and the hash of its secret, never the token."""

    model_config = ConfigDict(frozen=True)

    token_id: str
    token_hash: str
    role: Role
    name: str = ""
    csm_id: str | None = None
    sources: tuple[str, ...] = ()
    commerce: bool = False
    created_at: datetime
    revoked_at: datetime | None = None

    def principal(self) -> Principal:
        return Principal(token_id=self.token_id, role=self.role, name=self.name, csm_id=self.csm_id,
                         sources=self.sources, commerce=self.commerce)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def new_token() -> tuple[str, str]:
    """A fresh (token id, token)."""
    token_id = secrets.token_hex(6)
    return token_id, f"{TOKEN_PREFIX}{token_id}_{secrets.token_urlsafe(32)}"


class TokenStore(Protocol):
    def find(self, token_hash: str) -> TokenRecord | None: ...

    def add(self, record: TokenRecord) -> None: ...

    def revoke(self, token_id: str, at: datetime) -> bool: ...

    def all(self) -> list[TokenRecord]: ...


class MongoTokenStore:
    """Tokens in the ``tokens`` collection of the auth database: ``_id`` the token id, a unique index
    on the hash."""

    def __init__(self, db: Any) -> None:
        self.tokens = db["tokens"]

    def ensure_indexes(self) -> None:
        self.tokens.create_index("token_hash", unique=True)

    def find(self, token_hash: str) -> TokenRecord | None:
        doc = self.tokens.find_one({"token_hash": token_hash})
        return None if doc is None else _record(doc)

    def add(self, record: TokenRecord) -> None:
        doc = record.model_dump()
        doc["_id"] = doc.pop("token_id")
        self.tokens.insert_one(doc)

    def revoke(self, token_id: str, at: datetime) -> bool:
        result = self.tokens.update_one({"_id": token_id, "revoked_at": None}, {"$set": {"revoked_at": at}})
        return bool(result.modified_count)

    def all(self) -> list[TokenRecord]:
        return [_record(d) for d in self.tokens.find({}).sort("created_at", 1)]


def _record(doc: dict[str, Any]) -> TokenRecord:
    fields = {k: v for k, v in doc.items() if k != "_id"}
    return TokenRecord(token_id=doc["_id"], **fields)


class Authenticator:
    """Token → principal, with a bounded cache of recent lookups (hits and misses)."""

    def __init__(self, store: TokenStore | None, static_admin_tokens: Iterable[str] = (),
                 cache_ttl_s: float = 10.0, cache_size: int = 4096,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.store = store
        # By hash, like stored tokens, so a session can name either kind the same way.
        self.static = {hash_token(t): Principal(token_id=f"static-{i}", role="admin", name="static admin token")
                       for i, t in enumerate(static_admin_tokens) if t}
        self.cache_ttl_s = cache_ttl_s
        self.cache_size = cache_size
        self.clock = clock
        self._cache: OrderedDict[str, tuple[float, Principal | None]] = OrderedDict()
        self._lock = threading.Lock()

    def authenticate(self, token: str) -> Principal | None:
        """The principal the token proves, or None. Raises ``DependencyUnavailable`` when the token
        store cannot be read (a 503, not a 401: the token may well be good)."""
        token = token.strip()
        if not token or len(token) > 512:
            return None
        return self.by_hash(hash_token(token))

    def by_hash(self, token_hash: str) -> Principal | None:
        """The principal of the token whose hash is ``token_hash`` (a session names its token so)."""
        if (static := self.static.get(token_hash)) is not None:
            return static
        if self.store is None:
            return None
        now = self.clock()
        with self._lock:
            cached = self._cache.get(token_hash)
            if cached is not None and cached[0] > now:
                return cached[1]
        try:
            record = self.store.find(token_hash)
        except Exception as exc:  # the driver's errors: the store is unreachable
            raise DependencyUnavailable(f"the token store cannot be read: {type(exc).__name__}") from exc
        principal = record.principal() if record is not None and record.revoked_at is None else None
        with self._lock:
            self._cache[token_hash] = (now + self.cache_ttl_s, principal)
            self._cache.move_to_end(token_hash)
            while len(self._cache) > self.cache_size:
                self._cache.popitem(last=False)
        return principal


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization")
    if not header:
        return None
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise HTTPException(status.HTTP_401_UNAUTHORIZED,
                            detail="malformed Authorization header: expected 'Bearer <token>'",
                            headers={"WWW-Authenticate": "Bearer"})
    return token


#: A hook the alerts inbox installs to read a principal from its session cookie (with the CSRF check
#: for state changes); None elsewhere.
CookiePrincipal = Callable[[Request, Authenticator], Principal | None]


#: Only so that the OpenAPI documents say every route needs a bearer token (as ``securitySchemes``);
#: ``bearer_token`` reads the header itself, refusing a malformed one instead of ignoring it.
BEARER = HTTPBearer(auto_error=False, scheme_name="bearer", bearerFormat="fbt_<id>_<secret>",
                    description="A token from `feedbackctl tokens create` (or a static admin key).")


def current_principal(
    request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)] = None,
) -> Principal:
    """The request's principal (bearer token, else the app's session cookie), or 401; then a query
    parameter the route does not read is refused (after authentication: a caller without a token
    learns nothing of the routes)."""
    principal = _principal(request)
    refuse_unknown_query(request)
    return principal


def _principal(request: Request) -> Principal:
    """The request's principal (bearer token, else the app's session cookie), or 401."""
    authenticator: Authenticator = request.app.state.authenticator
    token = bearer_token(request)
    try:
        if token is not None:
            principal = authenticator.authenticate(token)
            if principal is None:
                raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="token not accepted (unknown or revoked)",
                                    headers={"WWW-Authenticate": "Bearer"})
            return principal
        from_cookie: CookiePrincipal | None = getattr(request.app.state, "cookie_principal", None)
        principal = from_cookie(request, authenticator) if from_cookie is not None else None
    except DependencyUnavailable as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail=str(exc), headers={"Retry-After": "5"}) from exc
    if principal is None:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="authentication required: send "
                            "'Authorization: Bearer <token>'", headers={"WWW-Authenticate": "Bearer"})
    return principal


def require(permission: str) -> Callable[..., Principal]:
    """A dependency: the request's principal, which must hold ``permission`` (else 403 naming it)."""

    def dependency(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        if not principal.can(permission):
            raise HTTPException(status.HTTP_403_FORBIDDEN,
                                detail=f"role {principal.role!r} may not do this (needs {permission!r})")
        return principal

    dependency.__name__ = f"require_{permission.replace('.', '_')}"
    return dependency


#: The OpenAPI responses every protected route may give besides its own.
AUTH_RESPONSES: dict[int | str, dict[str, Any]] = {
    401: {"description": "No token, or a token that is unknown or revoked."},
    403: {"description": "The token's role may not do this."},
}


class TokenRequest(BaseModel):
    """What ``feedbackctl tokens create`` asks for."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    role: Role
    name: Annotated[str, Field(max_length=200)] = ""
    csm_id: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    sources: tuple[Annotated[str, Field(min_length=1, max_length=64)], ...] = ()
    commerce: bool = False

    def checked(self) -> TokenRequest:
        if self.role == "csm" and not self.csm_id:
            raise ValueError("a csm token needs --csm-id")
        if self.role != "csm" and self.csm_id:
            raise ValueError("--csm-id is only for role csm")
        if self.role != "integration" and (self.sources or self.commerce):
            raise ValueError("--source and --commerce are only for role integration")
        return self


def create_token(store: TokenStore, request: TokenRequest, now: datetime) -> tuple[str, TokenRecord]:
    """Store a new token for ``request``; returns the token (shown once) and its record."""
    request = request.checked()
    token_id, token = new_token()
    record = TokenRecord(token_id=token_id, token_hash=hash_token(token), created_at=now,
                         **request.model_dump())
    store.add(record)
    return token, record
