"""Principals, roles and tokens: what each role may do, hashed storage, revocation and the cache."""

from __future__ import annotations

import pytest

from feedback_shared.auth import PERMISSIONS, Authenticator, Principal, TokenRequest, hash_token
from feedback_shared.errors import DependencyUnavailable
from feedback_shared.events import utcnow
from tests.unit.shared.fake_tokens import MemoryTokenStore


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_tokens_are_stored_only_as_their_hash() -> None:
    store = MemoryTokenStore()
    token = store.token("csm", csm_id="csm-1")
    [record] = store.all()
    assert token.startswith(f"fbt_{record.token_id}_")
    assert record.token_hash == hash_token(token)
    assert token not in record.model_dump_json()


def test_a_token_proves_its_principal_and_a_wrong_one_nothing() -> None:
    store = MemoryTokenStore()
    token = store.token("integration", sources=("shopify",), commerce=True)
    auth = Authenticator(store)
    principal = auth.authenticate(token)
    assert principal is not None
    assert (principal.role, principal.sources, principal.commerce) == ("integration", ("shopify",), True)
    assert auth.authenticate(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert auth.authenticate("") is None
    assert auth.authenticate("x" * 10_000) is None


def test_a_revoked_token_stops_working_once_the_cache_expires() -> None:
    store, clock = MemoryTokenStore(), Clock()
    token = store.token("manager")
    auth = Authenticator(store, cache_ttl_s=10, clock=clock)
    assert auth.authenticate(token) is not None
    [record] = store.all()
    assert store.revoke(record.token_id, utcnow())
    assert auth.authenticate(token) is not None  # cached
    clock.now += 11
    assert auth.authenticate(token) is None
    assert not store.revoke(record.token_id, utcnow())


def test_lookups_are_cached_so_a_burst_costs_one_read() -> None:
    store = MemoryTokenStore()
    token = store.token("reader")
    auth = Authenticator(store)
    for _ in range(50):
        auth.authenticate(token)
        auth.authenticate("fbt_unknown_token")
    assert store.finds == 2


def test_the_cache_is_bounded() -> None:
    store = MemoryTokenStore()
    auth = Authenticator(store, cache_size=8)
    for i in range(100):
        auth.authenticate(f"fbt_x_{i}")
    assert len(auth._cache) == 8


def test_an_unreachable_store_is_unavailable_not_unauthenticated() -> None:
    store = MemoryTokenStore()
    token = store.token("reader")
    store.down = True
    with pytest.raises(DependencyUnavailable):
        Authenticator(store).authenticate(token)


def test_static_tokens_are_admins() -> None:
    auth = Authenticator(None, ["boot-strap-token"])
    principal = auth.authenticate("boot-strap-token")
    assert principal is not None and principal.role == "admin"
    assert auth.authenticate("boot-strap-tokenX") is None


@pytest.mark.parametrize(("role", "allowed", "refused"), [
    ("admin", ["directory.write", "tokens", "erasure", "cases.read_all", "ingest.write"], []),
    ("manager", ["cases.read_all", "cases.act", "insights.read"], ["directory.write", "tokens", "ingest.write"]),
    ("csm", ["cases.read", "cases.act", "score"], ["cases.read_all", "directory.write", "ingest.write", "erasure",
                                              "insights.read"]),
    ("integration", ["ingest.write", "score"], ["cases.read", "directory.write", "insights.read"]),
    ("reader", ["insights.read", "metrics.read"], ["cases.read", "ingest.write", "score", "cases.act"]),
])
def test_roles(role: str, allowed: list[str], refused: list[str]) -> None:
    principal = Principal(token_id="t", role=role)  # type: ignore[arg-type]
    assert all(principal.can(p) for p in allowed)
    assert not any(principal.can(p) for p in refused)
    assert set(PERMISSIONS) == {"admin", "manager", "csm", "integration", "reader"}


@pytest.mark.parametrize(("request_", "error"), [
    (TokenRequest(role="csm"), "--csm-id"),
    (TokenRequest(role="manager", csm_id="c"), "only for role csm"),
    (TokenRequest(role="reader", sources=("x",)), "only for role integration"),
])
def test_token_requests_are_checked(request_: TokenRequest, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        request_.checked()


def test_an_integration_writes_only_its_sources() -> None:
    scoped = Principal(token_id="t", role="integration", sources=("shopify",))
    assert scoped.may_write_source("shopify") and not scoped.may_write_source("google")
    assert Principal(token_id="t", role="integration").may_write_source("google")
