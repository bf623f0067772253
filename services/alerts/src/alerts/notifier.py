"""Delivery of alert notifications through the outbox, to Apprise URLs (e-mail, Slack, Teams, JSON …).

A delivery is written to the outbox in MongoDB first; the dispatcher claims due deliveries a few at a
time (woken as soon as the stream side enqueues, polling besides), sends each, and records the outcome.
Deliveries the stream side enqueues go in already claimed by this process and are handed over in
memory. A failed send is retried with exponential backoff and marked dead after
``delivery_max_attempts``; a worker that dies mid-send leaves a lease that expires, so another retries
it. An outage of a channel therefore loses nothing.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import html
import http.cookiejar
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

import apprise
import httpcore
import httpx

from alerts.config import Settings
from alerts.metrics import AlertsMetrics
from alerts.ports import Outbox
from feedback_shared.events import utcnow
from feedback_shared.loops import every
from feedback_shared.outbound import (
    MAX_RESPONSE_BYTES,
    SEND_TIMEOUT_S,
    OutboundPolicy,
    OutboundRefused,
    check_notify_url,
    check_webhook_url,
    connectable_addresses,
)
from feedback_shared.webhooks import signed_headers

logger = logging.getLogger(__name__)


def channel_of(url: str) -> str:
    """A low-cardinality label for a notify URL: its scheme (mailto, slack, msteams, json …)."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else "unknown"
    return scheme if scheme.isalnum() and len(scheme) <= 16 else "other"


#: Apprise schemes that take extra headers as ``+Name=value`` in the URL: the HTTP POSTs, and e-mail
#: (the header goes into the message, where a ticketing system reading the mailbox can match it).
HEADER_SCHEMES = frozenset({"json", "jsons", "xml", "xmls", "form", "forms", "mailto", "mailtos"})


#: Before the title of a page sent again by a worker that took it over from one that stopped mid-send.
RESUMED_PREFIX = "(possible repeat) "


def with_idempotency_key(url: str, key: str) -> str:
    """``url`` with an ``Idempotency-Key: key`` header, for the channels that can carry one.

    A delivery is at least once: a worker killed after a send and before recording it sends again once
    its lease runs out. The key (the delivery's id, the same on every attempt) lets a receiver drop the
    repeat, as ``webhook-id`` does for the signed webhooks. Slack and Teams carry no such key. (E-mail
    gets the header, not a fixed Message-ID: Apprise always writes its own, and two would be invalid.)
    """
    if url.split("://", 1)[0].lower() not in HEADER_SCHEMES:
        return url
    base, _, fragment = url.partition("#")
    joiner = "&" if "?" in base else "?"
    return f"{base}{joiner}+Idempotency-Key={quote(key, safe='')}" + (f"#{fragment}" if fragment else "")


def with_send_timeouts(url: str) -> str:
    """``url`` with Apprise's connect and read timeouts set to ours (a saved URL may not set them:
    ``feedback_shared.outbound`` refuses ``cto``/``rto``)."""
    if url.split("://", 1)[0].lower() not in HEADER_SCHEMES | {"slack", "msteams"}:
        return url
    base, _, fragment = url.partition("#")
    joiner = "&" if "?" in base else "?"
    return f"{base}{joiner}cto={SEND_TIMEOUT_S / 2:g}&rto={SEND_TIMEOUT_S:g}" + (f"#{fragment}" if fragment else "")


#: Apprise's own options on a json:// URL: not passed on as query parameters.
APPRISE_OPTIONS = frozenset({"cto", "rto", "format", "overflow", "verify", "method", "emojis", "tz", "store",
                             "interpret-emojis"})


#: The HTTP page schemes sent directly (``send_http_page``), with their secure twins.
HTTP_PAGE_SCHEMES = {"json": "json", "jsons": "json", "form": "form", "forms": "form", "xml": "xml", "xmls": "xml"}

XML_ENVELOPE = ("<?xml version='1.0' encoding='utf-8'?>\n<soapenv:Envelope"
                ' xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"'
                ' xmlns:xsd="http://www.w3.org/2001/XMLSchema"'
                ' xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
                "<soapenv:Body><Notification>{core}</Notification></soapenv:Body></soapenv:Envelope>")


def http_page_body(kind: str, title: str, body: str) -> tuple[str, bytes]:
    """(content type, body) of a json, form or xml page, as Apprise writes them."""
    if kind == "form":
        return "application/x-www-form-urlencoded", urlencode(
            {"version": "1.0", "title": title, "message": body, "type": "info"}).encode()
    if kind == "xml":
        core = "".join(f"<{k}>{html.escape(v, quote=False)}</{k}>" for k, v in (
            ("Version", "1.1"), ("Subject", title), ("Message", body), ("MessageType", "info")))
        return "application/xml", XML_ENVELOPE.format(core=core).encode()
    payload = {"version": "1.0", "title": title, "message": body, "attachments": [], "type": "info"}
    return "application/json", json.dumps(payload).encode()


def read_bounded(response: httpx.Response) -> None:
    """Read at most ``MAX_RESPONSE_BYTES`` of an answer (the rest is dropped with the connection)."""
    read = 0
    for chunk in response.iter_bytes():
        read += len(chunk)
        if read > MAX_RESPONSE_BYTES:
            break


class PinnedBackend(httpcore.SyncBackend):
    """Connects only to an address the outbound policy admits, resolved and checked at connection
    time (``connectable_addresses``): the URL was checked when saved and before the send, but a name
    can resolve elsewhere a moment later (DNS rebinding). TLS still verifies the certificate against
    the host name (httpcore starts TLS with the origin's name, not the address)."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self.policy = policy

    def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                    socket_options: Iterable[Any] | None = None) -> httpcore.NetworkStream:
        try:
            addresses = connectable_addresses(host, self.policy)
        except OutboundRefused as exc:
            raise httpcore.ConnectError(f"refused at connection: {exc}") from exc
        last: Exception | None = None
        for address in addresses:
            try:
                return super().connect_tcp(address, port, timeout=timeout, local_address=local_address,
                                           socket_options=socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
        raise last or httpcore.ConnectError(f"host {host} has no address to connect to")


_client_lock = threading.Lock()
_clients: dict[OutboundPolicy, httpx.Client] = {}


def http_client(policy: OutboundPolicy) -> httpx.Client:
    """One client per outbound policy for every page and webhook the process sends: its connections are
    pooled and its TLS context is built once. A client per send built a fresh SSL context (the CA store
    loaded again) each time, which was two thirds of the alerts service's CPU in an incident burst.
    Redirects are never followed (one could point inward); each request sets its own auth and reads a
    bounded answer; every connection goes only to an address ``policy`` admits (``PinnedBackend``)."""
    with _client_lock:
        client = _clients.get(policy)
        if client is None:
            # No cookie is kept: what one receiver sets must never ride along to another page.
            no_cookies = http.cookiejar.CookieJar(http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
            transport = httpx.HTTPTransport(limits=httpx.Limits(max_connections=32, max_keepalive_connections=16))
            # httpx builds its connection pool without a way to name the network backend: set it on the pool
            # (a unit test checks that connections go through it, so an httpx change that drops it fails).
            transport._pool._network_backend = PinnedBackend(policy)
            client = _clients[policy] = httpx.Client(
                transport=transport, timeout=httpx.Timeout(SEND_TIMEOUT_S, connect=SEND_TIMEOUT_S / 2),
                follow_redirects=False, cookies=no_cookies)
        return client


#: The policy of a send that names none: the public internet only.
PUBLIC_ONLY = OutboundPolicy()


def send_json(url: str, title: str, body: str, policy: OutboundPolicy = PUBLIC_ONLY) -> None:
    """A ``json://``, ``form://`` or ``xml://`` page (and their ``s`` twins), POSTed the way Apprise
    would (its payload, ``+Header`` headers, user:password as basic auth), but with what Apprise does
    not offer: no redirect is followed (one could point inward) and at most ``MAX_RESPONSE_BYTES`` of
    the answer are read."""
    parts = urlsplit(url)
    scheme = "https" if parts.scheme.lower().endswith("s") else "http"
    content_type, content = http_page_body(HTTP_PAGE_SCHEMES[parts.scheme.lower()], title, body)
    headers = {"User-Agent": "feedback-pipeline/1", "Content-Type": content_type}
    params: list[tuple[str, str | int | float | bool | None]] = []
    # Not parse_qsl: it reads "+" as a space, and "+Name" is how Apprise URLs name a header.
    pairs = (item.partition("=") for item in parts.query.split("&") if item)
    for key, value in ((unquote(k), unquote(v)) for k, _, v in pairs):
        if key.startswith("+"):
            headers[key[1:]] = value
        elif key.lower() not in APPRISE_OPTIONS and not key.startswith(("-", ":")):
            params.append((key, value))
    host = parts.hostname or ""
    netloc = f"[{host}]" if ":" in host else host
    if parts.port:
        netloc += f":{parts.port}"
    auth = (unquote(parts.username or ""), unquote(parts.password or "")) if parts.username else None
    with http_client(policy).stream("POST", f"{scheme}://{netloc}{parts.path or '/'}", params=params, headers=headers,
                              content=content, auth=auth or httpx.USE_CLIENT_DEFAULT) as response:
        read_bounded(response)
        if not response.is_success:
            raise ConnectionError(f"{parts.scheme.lower()} delivery answered {response.status_code}")


def send_with_apprise(url: str, title: str, body: str, policy: OutboundPolicy = PUBLIC_ONLY) -> None:
    """Send a page; json/form/xml pages directly (``send_json``), the other schemes through Apprise."""
    if url.split("://", 1)[0].lower() in HTTP_PAGE_SCHEMES:
        send_json(url, title, body, policy)
        return
    notifier = apprise.Apprise()
    if not notifier.add(with_send_timeouts(url)):
        raise ValueError(f"not a notification URL Apprise understands ({channel_of(url)}://…)")
    # Every body here is plain text. Undeclared, Apprise takes it for HTML: an e-mail's text part came out
    # as one line (its line breaks folded) and its HTML part showed none either.
    if not notifier.notify(title=title, body=body, body_format=apprise.NotifyFormat.TEXT):
        raise ConnectionError(f"{channel_of(url)} delivery failed")


def send_signed_webhook(url: str, secret: str, msg_id: str, payload: bytes, timeout_s: float = SEND_TIMEOUT_S,
                        policy: OutboundPolicy = PUBLIC_ONLY) -> None:
    """POST an alert event with Standard Webhooks headers; anything but 2xx is a failure to retry. No
    redirect is followed (it could point inward), and at most ``MAX_RESPONSE_BYTES`` are read."""
    headers = {"Content-Type": "application/json", **signed_headers(secret, msg_id, payload)}
    with http_client(policy).stream("POST", url, content=payload, headers=headers, timeout=timeout_s,
                              follow_redirects=False) as response:
        read_bounded(response)
        if not response.is_success:
            raise ConnectionError(f"webhook answered {response.status_code}")


class SendTimeout(ConnectionError):
    """A send that outlived its wall-time cap (a receiver that answers byte by byte)."""


def within_wall_time(send: Callable[[], None], limit_s: float) -> None:
    """Run ``send`` with a cap on its wall time. Past the cap the worker moves on and the delivery is
    retried later; the abandoned thread ends when its socket times out (connect and read timeouts)."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            send()
            outcome.append(None)
        except BaseException as exc:  # handed to the caller's thread
            outcome.append(exc)

    thread = threading.Thread(target=run, name="outbound-send", daemon=True)
    thread.start()
    thread.join(limit_s)
    if not outcome:
        raise SendTimeout(f"no answer within {limit_s:g} s")
    if outcome[0] is not None:
        raise outcome[0]


class Refused(Exception):
    """A delivery whose target the outbound policy refuses: dead at once, never retried."""


def backoff(attempts: int, base_s: float, max_s: float) -> timedelta:
    return timedelta(seconds=min(max_s, base_s * 2 ** max(0, attempts - 1)))


class Dispatcher:
    def __init__(
        self,
        outbox: Outbox,
        settings: Settings,
        metrics: AlertsMetrics,
        send: Callable[[str, str, str], None] | None = None,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.outbox = outbox
        self.settings = settings
        self.metrics = metrics
        self.policy = settings.outbound_policy()
        #: (url, title, body) -> None: by default Apprise's channels, the HTTP ones pinned to the policy.
        self.send = send or (lambda url, title, body: send_with_apprise(url, title, body, self.policy))
        self.clock = clock
        self._wakeup = asyncio.Event()
        self._handed_over: collections.deque[dict[str, Any]] = collections.deque()
        #: Every delivery this process has claimed and not finished with, by id: its lease is renewed
        #: while it is here (``renew_leases``). The lock keeps a renewal and a release apart.
        self._held: dict[str, dict[str, Any]] = {}
        self._lease_lock = threading.Lock()
        # Deliveries claimed per query: the query reads every due delivery, so one per claim made a
        # backlog of n cost n reads each; a worker holding a few leases at once is harmless.
        self.claim_batch = 10
        #: When this process last looked for due deliveries (monotonic seconds). Its own new deliveries
        #: come handed over, so the claim query is only for retries, expired leases and what other
        #: processes released: one look per poll interval for all the workers, not one per worker per
        #: wake-up (in an incident burst those looks were half the database's commands).
        self._claim_looked_at = -math.inf

    def _deliver(self, doc: dict[str, Any]) -> None:
        # Checked again at each send, not only when saved: DNS may point the name inward by now.
        try:
            if doc.get("kind") == "webhook":
                check_webhook_url(doc["url"], self.policy)
            else:
                check_notify_url(doc["url"], self.policy)
        except OutboundRefused as exc:
            raise Refused(str(exc)) from exc
        if doc.get("kind") == "webhook":
            secret = self.settings.webhook_secret.get_secret_value() if self.settings.webhook_secret else ""
            within_wall_time(lambda: send_signed_webhook(doc["url"], secret, doc["msg_id"], doc["payload"].encode(),
                                                     policy=self.policy),
                             SEND_TIMEOUT_S * 2)
        else:
            # Taken over from a worker that stopped mid-send: the page may be out already. Receivers
            # honouring the key drop it; a person reading Slack or e-mail is told.
            title = f"{RESUMED_PREFIX}{doc['title']}" if doc.get("resumed") else doc["title"]
            within_wall_time(lambda: self.send(with_idempotency_key(doc["url"], doc["_id"]), title, doc["body"]),
                             SEND_TIMEOUT_S * 2)

    def deliver_due(self, limit: int) -> int:
        """Claim up to ``limit`` due deliveries with one query and attempt each; how many were claimed."""
        now = self.clock()
        claimed = self.outbox.claim_due(now, timedelta(seconds=self.settings.delivery_lease_s), limit)
        self._held.update((doc["_id"], doc) for doc in claimed)
        self._attempt_all(claimed)
        return len(claimed)

    def _attempt_all(self, docs: list[dict[str, Any]]) -> None:
        """Send each delivery, then record those sent in one command (a page cost one more round trip
        each). A worker killed in between resends them after the lease, as it would one."""
        sent: list[tuple[dict[str, Any], datetime]] = []
        try:
            for doc in docs:
                if self._attempt_held(doc):
                    sent.append((doc, self.clock()))  # when it reached the receiver, for the latency
        finally:
            if sent:
                self.outbox.mark_sent([doc["_id"] for doc, _ in sent], self.clock())
                for doc, at in sent:
                    self._record_sent(doc, at)
            for doc in docs:
                self._held.pop(doc["_id"], None)

    def _attempt_held(self, doc: dict[str, Any]) -> bool:
        """Send one delivery; True if it went out. A failure is recorded for a retry (or dead)."""
        if self.clock() >= doc["lease_until"]:
            # A batch behind a slow channel (or a long hand-over queue) may outlive its lease: past it,
            # another worker may have the delivery already, so this one leaves it (the poll claims it
            # again, as after a crash; it is never sent twice at once).
            return False
        channel = "webhook" if doc.get("kind") == "webhook" else channel_of(doc["url"])
        try:
            self._deliver(doc)
        except Exception as exc:
            dead = isinstance(exc, Refused) or doc["attempts"] >= self.settings.delivery_max_attempts
            delay = backoff(doc["attempts"], self.settings.delivery_backoff_s, self.settings.delivery_backoff_max_s)
            self.outbox.mark_failed(doc["_id"], dead=dead, next_attempt_at=self.clock() + delay, error=repr(exc))
            self.metrics.notifications.labels(channel=channel, outcome="dead" if dead else "retry").inc()
            logger.warning("delivery_failed", extra={"delivery": doc["_id"], "alert_id": doc["alert_id"],
                                                     "channel": channel, "attempt": doc["attempts"], "dead": dead,
                                                     "error": repr(exc)})
            return False
        return True

    def _record_sent(self, doc: dict[str, Any], sent_at: datetime) -> None:
        channel = "webhook" if doc.get("kind") == "webhook" else channel_of(doc["url"])
        self.metrics.notifications.labels(channel=channel, outcome="sent").inc()
        created: datetime | None = doc.get("feedback_ingested_at")
        if created is not None and doc.get("kind") != "webhook":
            # From intake to the page out of the door (not to the outbox's record of it, a write later).
            self.metrics.feedback_to_alert.observe(max(0.0, (sent_at - created).total_seconds()))
        logger.info("delivered", extra={"delivery": doc["_id"], "alert_id": doc["alert_id"], "channel": channel})

    def hand_over(self, doc: dict[str, Any]) -> None:
        """A delivery this process enqueued already claimed (``Outbox.enqueue(claim_for=…)``):
        sent next, without a claim query and update (two of the four database calls a page cost).
        Thread-safe."""
        self._held[doc["_id"]] = doc
        self._handed_over.append(doc)

    def deliver_handed_over(self, limit: int) -> int:
        """Attempt up to ``limit`` handed-over deliveries; how many were taken."""
        taken: list[dict[str, Any]] = []
        while len(taken) < limit:
            try:
                taken.append(self._handed_over.popleft())
            except IndexError:
                break
        self._attempt_all(taken)
        return len(taken)

    def release_handed_over(self) -> int:
        """On a clean stop: put the handed-over deliveries not yet sent back in the outbox as pending,
        for any worker to take now rather than when their leases run out."""
        released = 0
        with self._lease_lock:
            while self._handed_over:
                doc = self._handed_over.popleft()
                self._held.pop(doc["_id"], None)
                released += self.outbox.release(doc["_id"], doc["lease_until"], self.clock())
        return released

    def renew_leases(self) -> tuple[int, int]:
        """Extend the lease of every delivery this process holds (handed over and waiting, or being
        sent), so only a process that is gone lets its deliveries go. A delivery whose lease another
        worker has taken meanwhile (this one was cut off for longer than the lease) is given up: it is
        not sent from here. Returns (renewed, given up)."""
        with self._lease_lock:
            held = list(self._held.items())
            until = self.clock() + timedelta(seconds=self.settings.delivery_lease_s)
            renewed = self.outbox.renew_leases([(d, doc["lease_until"], doc["attempts"]) for d, doc in held], until)
            lost = 0
            for delivery_id, doc in held:
                if delivery_id in renewed:
                    doc["lease_until"] = until
                elif self._held.pop(delivery_id, None) is not None:
                    doc["lease_until"] = self.clock()  # past: _attempt leaves it (if not already sending)
                    lost += 1
                    logger.warning("delivery_lease_lost", extra={"delivery": delivery_id, "alert_id": doc["alert_id"]})
        return len(renewed), lost

    def wake(self) -> None:
        """New deliveries are in the outbox: the workers look now rather than at their next poll. Call
        from the event loop's thread. (The poll stays, for retries, expired leases and other replicas.)"""
        self._wakeup.set()

    def _claim_turn(self) -> bool:
        """Whether this worker looks for due deliveries now (at most once per poll interval for the
        process; called in the event loop, so two workers never both take the same turn)."""
        now = time.monotonic()
        if now - self._claim_looked_at < self.settings.delivery_poll_s:
            return False
        self._claim_looked_at = now
        return True

    async def drain(self, max_items: int = 50) -> int:
        done = 0
        while done < max_items and self._handed_over:
            done += await asyncio.to_thread(self.deliver_handed_over, min(self.claim_batch, max_items - done))
        while done < max_items and self._claim_turn():
            wanted = min(self.claim_batch, max_items - done)
            claimed = await asyncio.to_thread(self.deliver_due, wanted)
            done += claimed
            if claimed < wanted:
                break  # nothing more is due: the next look is a poll interval away
            self._claim_looked_at = -math.inf  # a backlog: look again at once
        return done

    async def _worker(self) -> None:
        while True:
            try:
                # Cleared before draining, so a wake-up during the drain is not lost.
                self._wakeup.clear()
                if await self.drain() == 0:
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wakeup.wait(), self.settings.delivery_poll_s)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("dispatcher_error")
                await asyncio.sleep(min(5.0, self.settings.delivery_poll_s * 4))

    async def _renewer(self) -> None:
        await every(self.settings.delivery_lease_s / 3, lambda: asyncio.to_thread(self.renew_leases),
                    name="lease_renewal", wait_first=True)

    async def run_forever(self) -> Any:
        """Several workers: each claim is atomic, so they never send the same delivery, and one slow
        channel (an SMTP server taking seconds) does not hold up the others. Beside them, the leases of
        what they hold are renewed."""
        workers = (self._worker() for _ in range(max(1, self.settings.delivery_concurrency)))
        await asyncio.gather(self._renewer(), *workers)
