"""Loyalty's MongoDB stores, one per aggregate, and ``MongoLoyaltyStore``: the three for one database, and
the transactions that move them together (a batch; a redemption or an expiry)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime

from pymongo import MongoClient
from pymongo.client_session import ClientSession
from pymongo.database import Database
from pymongo.errors import BulkWriteError, DuplicateKeyError

from loyalty.decide import AccountChange
from loyalty.domain import (
    Applied,
    Doc,
    InsufficientBalance,
    LedgerEntry,
    PurchaseRecord,
    ReviewClaim,
    WriteConflict,
)
from loyalty.stores._bulk import is_duplicate
from loyalty.stores.accounts import MongoAccountStore
from loyalty.stores.ledger import MongoLedgerStore
from loyalty.stores.purchases import MongoPurchaseStore

__all__ = ["MongoAccountStore", "MongoLedgerStore", "MongoLoyaltyStore", "MongoPurchaseStore"]


class MongoLoyaltyStore:
    def __init__(self, client: MongoClient[Doc], db: Database[Doc]) -> None:
        self.client = client
        self.accounts = MongoAccountStore(db)
        self.purchases = MongoPurchaseStore(db)
        self.ledger = MongoLedgerStore(db)

    def ensure_indexes(self) -> None:
        self.accounts.ensure_indexes()
        self.purchases.ensure_indexes()
        self.ledger.ensure_indexes()

    def write(self, purchases: Sequence[PurchaseRecord], entries: Sequence[LedgerEntry],
              accounts: Sequence[AccountChange], *, claims: Sequence[ReviewClaim] = (),
              claims_paid: Sequence[str] = ()) -> None:
        """One transaction: insert the purchases and the entries, one ``bulk_write`` for the accounts.

        Entries already on the ledger were loaded before deciding, so none is written again; one that
        appears in between (another replica during a rebalance) fails its unique ``_id``, which aborts the
        transaction (a failed statement aborts it, on MongoDB as on SecantusDB) and becomes a
        ``WriteConflict``: the caller loads and decides again, and then skips it. So a batch's entries and
        the balances they move are written together or not at all."""
        if not (purchases or entries or accounts or claims or claims_paid):
            return

        def write(session: ClientSession) -> None:
            self.purchases.record(purchases, session)
            self.ledger.append(entries, session)
            self.accounts.move(accounts, session)
            self.purchases.keep_claims(claims, claims_paid, session)

        try:
            with self.client.start_session() as session:
                session.with_transaction(write)
        except (DuplicateKeyError, BulkWriteError) as exc:
            if not is_duplicate(exc):
                raise
            raise WriteConflict(str(exc)) from exc

    def apply(self, entry: LedgerEntry, *, clamp_to_balance: bool = False,
              require_balance: bool = False) -> Applied:
        """Append ``entry`` and move the balance by its points, in one transaction.

        ``clamp_to_balance``: a debit takes at most the balance. ``require_balance``: a debit larger
        than the balance raises ``InsufficientBalance``. An entry already on the ledger is returned
        unchanged with ``created=False``.
        """
        ledger, customers = self.ledger.ledger, self.accounts.customers

        def write(session: ClientSession) -> Applied:
            # An entry already on the ledger fails the insert below (its id is unique) and is read back
            # after. Only a redemption looks first: a repeated request must get its first answer even
            # when the balance no longer covers it.
            if require_balance and (existing := ledger.find_one({"_id": entry.entry_id}, session=session)):
                state = customers.find_one({"_id": entry.customer_id}, session=session) or {}
                return Applied(LedgerEntry.from_doc(existing), int(state.get("balance", 0)), created=False,
                               tier=state.get("tier"))
            state = customers.find_one({"_id": entry.customer_id}, session=session) or {}
            balance = int(state.get("balance", 0))
            points = entry.points
            if points < 0 and clamp_to_balance:
                points = -min(-points, max(balance, 0))
            if points < 0 and require_balance and balance + points < 0:
                raise InsufficientBalance(balance, -points)
            final = replace(entry, points=points)
            ledger.insert_one(final.to_doc(), session=session)
            customers.update_one({"_id": final.customer_id},
                                 {"$inc": {"balance": points, "revision": 1},
                                  "$max": {"last_activity_at": final.at}},
                                 upsert=True, session=session)
            return Applied(final, balance + points, created=True, tier=state.get("tier"))

        try:
            with self.client.start_session() as session:
                result: Applied = session.with_transaction(write)
                return result
        except DuplicateKeyError:
            # Applied before (a redelivery), or by another worker at the same moment (a rebalance): once.
            existing = ledger.find_one({"_id": entry.entry_id})
            if existing is None:
                raise
            account = self.accounts.account(entry.customer_id)
            return Applied(LedgerEntry.from_doc(existing), account.balance, created=False, tier=account.tier)

    def anonymise_customer(self, customer_id: str, pseudonym: str, requested_at: datetime) -> int:
        """Replace the customer's id with a pseudonym on the ledger and purchases; amounts stay for audit.

        Leaves a mark with ``requested_at`` (when ingest took the request): events from before it can
        still be in flight on the other topics, and ``decide`` keeps them off the real id."""
        accounts = self.accounts
        accounts.erasures.replace_one({"_id": customer_id}, {"_id": customer_id, "erased_at": requested_at},
                                      upsert=True)
        entries = self.ledger.ledger.update_many({"customer_id": customer_id},
                                                 {"$set": {"customer_id": pseudonym, "anonymised": True}})
        self.purchases.purchases.update_many({"customer_id": customer_id},
                                             {"$set": {"customer_id": pseudonym, "anonymised": True}})
        self.purchases.claims.delete_many({"customer_id": customer_id})
        accounts.customers.delete_one({"_id": customer_id})
        accounts.profiles.delete_one({"_id": customer_id})
        return int(entries.modified_count)
