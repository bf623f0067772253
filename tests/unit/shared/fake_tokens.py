"""An in-memory token store behind ``feedback_shared.auth.TokenStore``."""

from __future__ import annotations

from datetime import datetime

from feedback_shared.auth import Role, TokenRecord, TokenRequest, TokenStore, create_token
from feedback_shared.events import utcnow


class MemoryTokenStore:
    def __init__(self) -> None:
        self.records: dict[str, TokenRecord] = {}
        self.finds = 0
        self.down = False

    def find(self, token_hash: str) -> TokenRecord | None:
        self.finds += 1
        if self.down:
            raise ConnectionError("database unreachable")
        return next((r for r in self.records.values() if r.token_hash == token_hash), None)

    def add(self, record: TokenRecord) -> None:
        self.records[record.token_id] = record

    def revoke(self, token_id: str, at: datetime) -> bool:
        record = self.records.get(token_id)
        if record is None or record.revoked_at is not None:
            return False
        self.records[token_id] = record.model_copy(update={"revoked_at": at})
        return True

    def all(self) -> list[TokenRecord]:
        return list(self.records.values())

    def token(self, role: Role, **scope: object) -> str:
        """A new token for ``role`` (``csm_id``, ``sources``, ``commerce`` as in TokenRequest)."""
        token, _ = create_token(self, TokenRequest(role=role, **scope), utcnow())  # type: ignore[arg-type]
        return token


_: type[TokenStore] = MemoryTokenStore
