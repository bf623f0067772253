"""Notification URLs that point inward are refused when saved (422 with the reason) and again when
sent (the page goes dead at once, naming why, and nothing is sent); a send is capped in wall time."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from alerts.config import Settings
from alerts.domain import Delivery
from alerts.main import create_app
from alerts.metrics import AlertsMetrics
from alerts.notifier import Dispatcher, SendTimeout, within_wall_time
from feedback_shared.outbound import OutboundPolicy
from tests.unit.alerts.fakes import FakeOutbox, fake_store

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
#: The test servers listen on loopback, which only an operator allow-list admits.
LOOPBACK = OutboundPolicy(allow_hosts=frozenset({"127.0.0.0/8"}))


@pytest.mark.parametrize(("url", "reason"), [
    ("json://169.254.169.254/latest/meta-data/", "link-local"),
    ("json://10.0.0.5:8080/hook", "private"),
    ("jsons://127.0.0.1/x", "loopback"),
    ("mailto://user:pass@example.com?smtp=10.0.0.5", "smtp"),
    ("json://example.com/x?cto=600", "cto"),
    ("gopher://example.com/", "Apprise"),
])
def test_saving_an_inward_notify_url_is_422_with_the_reason(url: str, reason: str) -> None:
    app = create_app(Settings(api_keys=["admin-key"]), CollectorRegistry(), stream=False)
    app.state.store = store = fake_store()
    response = TestClient(app).put("/v1/csms/csm-1", json={"name": "Leyla", "notify": [url]},
                                   headers={"Authorization": "Bearer admin-key"})
    assert response.status_code == 422, response.text
    assert reason in str(response.json()["detail"])
    assert store.directory.csms_by_id(["csm-1"]) == {}


def test_an_operator_allow_list_admits_a_host() -> None:
    settings = Settings(api_keys=["admin-key"], outbound_allow_hosts=["10.0.0.0/24"])
    app = create_app(settings, CollectorRegistry(), stream=False)
    app.state.store = fake_store()
    response = TestClient(app).put("/v1/csms/csm-1", json={"name": "Leyla", "notify": ["json://10.0.0.5:8080/hook"]},
                                   headers={"Authorization": "Bearer admin-key"})
    assert response.status_code == 200


def test_a_page_to_an_inward_url_goes_dead_at_send_time_without_a_send() -> None:
    outbox = FakeOutbox()
    sent: list[str] = []
    dispatcher = Dispatcher(outbox, Settings(), AlertsMetrics.create(CollectorRegistry()),
                            send=lambda url, _t, _b: sent.append(url), clock=lambda: NOW)
    outbox.enqueue([Delivery("d-1", "apprise", "a-1", "json://169.254.169.254/x", title="t", body="b"),
                    Delivery("d-2", "apprise", "a-2", "json://93.184.215.14/x", title="t", body="b")], NOW)
    dispatcher.deliver_due(10)
    assert outbox.deliveries["d-1"]["status"] == "dead"
    assert "link-local" in outbox.deliveries["d-1"]["last_error"]
    assert sent == [u for u in sent if "169.254" not in u] and len(sent) == 1


def test_a_send_is_capped_in_wall_time() -> None:
    started = time.monotonic()
    with pytest.raises(SendTimeout):
        within_wall_time(lambda: time.sleep(5), 0.2)
    assert time.monotonic() - started < 2


def test_a_failing_send_reports_its_own_error() -> None:
    def send() -> None:
        raise ConnectionError("refused by the receiver")

    with pytest.raises(ConnectionError, match="refused by the receiver"):
        within_wall_time(send, 1)


def test_dead_pages_are_listed_and_requeued_by_an_admin_only() -> None:
    app = create_app(Settings(api_keys=["admin-key"]), CollectorRegistry(), stream=False)
    app.state.store = store = fake_store()
    outbox: FakeOutbox = store.outbox  # type: ignore[assignment]
    outbox.enqueue([Delivery(f"d-{i}", "apprise", f"a-{i}", "json://93.184.215.14/x", title="t", body="b")
                    for i in range(3)], NOW)
    for i in range(2):
        outbox.mark_failed(f"d-{i}", dead=True, next_attempt_at=NOW, error="receiver answered 500")
    client = TestClient(app)
    admin = {"Authorization": "Bearer admin-key"}
    listed = client.get("/v1/pages", headers=admin).json()
    assert [p["delivery_id"] for p in listed] == ["d-0", "d-1"]
    assert listed[0]["last_error"] == "receiver answered 500" and "body" not in listed[0]
    assert client.post("/v1/pages/requeue", json={"ids": ["d-1"]}, headers=admin).json() == {"requeued": 1}
    assert outbox.deliveries["d-1"]["status"] == "pending" and outbox.deliveries["d-1"]["attempts"] == 0
    assert client.post("/v1/pages/requeue", json={}, headers=admin).json() == {"requeued": 1}
    assert client.get("/v1/pages", headers=admin).json() == []
    assert client.get("/v1/pages").status_code == 401


class _Server:
    """A local receiver answering each POST with ``answer`` (status, headers, body); records what came."""

    def __init__(self, answer: tuple[int, dict[str, str], bytes]) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.requests: list[dict[str, Any]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                server.requests.append({"path": self.path, "headers": dict(self.headers),
                                        "body": self.rfile.read(length), "peer": self.client_address})
                status, headers, body = answer
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *_: Any) -> None:
                pass

        Handler.protocol_version = "HTTP/1.1"  # keep-alive, as real receivers do
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()


def test_a_json_page_posts_apprises_payload_with_its_headers_and_basic_auth() -> None:
    import base64
    import json

    from alerts.notifier import send_json

    server = _Server((200, {}, b"ok"))
    try:
        send_json(f"json://bot:s3cret@127.0.0.1:{server.port}/hook?+Idempotency-Key=abc&cto=5&team=cs", "Title", "Body", LOOPBACK)
    finally:
        server.close()
    [request] = server.requests
    assert json.loads(request["body"]) == {"version": "1.0", "title": "Title", "message": "Body",
                                           "attachments": [], "type": "info"}
    assert request["headers"]["Idempotency-Key"] == "abc"
    assert request["headers"]["Authorization"] == "Basic " + base64.b64encode(b"bot:s3cret").decode()
    assert request["path"] == "/hook?team=cs"  # Apprise's own options (cto) are not passed on


def test_pages_share_one_pooled_client_and_carry_no_cookie_from_an_earlier_answer() -> None:
    """A client per page built a TLS context per page: most of the alerts service's CPU in a burst."""
    from alerts.notifier import send_json

    server = _Server((200, {"Set-Cookie": "session=from-receiver; Path=/"}, b"ok"))
    try:
        for n in range(3):
            send_json(f"json://127.0.0.1:{server.port}/hook-{n}", "t", "b", LOOPBACK)
    finally:
        server.close()
    assert len(server.requests) == 3
    assert len({r["peer"] for r in server.requests}) == 1  # one connection, kept alive
    assert not any("Cookie" in r["headers"] for r in server.requests)


def test_a_json_page_follows_no_redirect_and_reads_a_bounded_answer() -> None:
    from alerts.notifier import send_json

    redirect = _Server((302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b""))
    try:
        with pytest.raises(ConnectionError, match="302"):
            send_json(f"json://127.0.0.1:{redirect.port}/hook", "t", "b", LOOPBACK)
        assert len(redirect.requests) == 1
    finally:
        redirect.close()
    huge = _Server((200, {}, b"x" * 5_000_000))
    try:
        send_json(f"json://127.0.0.1:{huge.port}/hook", "t", "b", LOOPBACK)  # answered 2xx: sent, the rest unread
    finally:
        huge.close()


def test_form_and_xml_pages_are_posted_directly_too() -> None:
    from urllib.parse import parse_qs

    from alerts.notifier import send_with_apprise

    server = _Server((200, {}, b"ok"))
    try:
        send_with_apprise(f"form://127.0.0.1:{server.port}/f", "Title & co", "Body <b>", LOOPBACK)
        send_with_apprise(f"xml://127.0.0.1:{server.port}/x", "Title & co", "Body <b>", LOOPBACK)
    finally:
        server.close()
    form, xml = server.requests
    assert parse_qs(form["body"].decode())["message"] == ["Body <b>"]
    assert form["headers"]["Content-Type"] == "application/x-www-form-urlencoded"
    assert b"<Subject>Title &amp; co</Subject>" in xml["body"] and b"<Message>Body &lt;b&gt;</Message>" in xml["body"]


def test_an_e_mail_keeps_its_line_breaks() -> None:
    """Messages to customers are written in paragraphs (the answer-by time on a line of its own)."""
    import socket
    import time as _time

    from aiosmtpd.controller import Controller
    from aiosmtpd.handlers import Message

    from alerts.notifier import send_with_apprise

    received: list[Any] = []

    class Keep(Message):
        def handle_message(self, message: Any) -> None:
            received.append(message)

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(Keep(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        send_with_apprise(f"mailto://127.0.0.1:{port}?from=care@example.com&to=dana@example.org&mode=insecure",
                          "Your request", "Dear Dana,\n\nWe will answer by 14:00.\nCase reference: 1a2b3c4d")
        deadline = _time.monotonic() + 5
        while not received and _time.monotonic() < deadline:
            _time.sleep(0.05)
    finally:
        controller.stop()
    [message] = received
    [plain] = [p for p in message.walk() if p.get_content_type() == "text/plain"]
    lines = plain.get_payload(decode=True).decode().splitlines()
    assert lines[:4] == ["Dear Dana,", "", "We will answer by 14:00.", "Case reference: 1a2b3c4d"]


def test_a_page_connects_only_to_an_address_checked_at_connection_time() -> None:
    """DNS rebinding: the name resolves to a public address when the URL is checked and to loopback a
    moment later, when the connection is made. The connection is refused; the receiver hears nothing."""
    from alerts.notifier import send_json
    from feedback_shared.outbound import check_notify_url

    server = _Server((200, {}, b"ok"))
    answers = iter([["93.184.215.14"], ["127.0.0.1"]])
    rebinding = OutboundPolicy(resolve=lambda _host: next(answers))
    url = f"json://rebind.example.com:{server.port}/hook"
    try:
        check_notify_url(url, rebinding)  # the check before the send: public
        with pytest.raises(httpx.ConnectError, match="loopback"):
            send_json(url, "t", "b", rebinding)
    finally:
        server.close()
    assert server.requests == []


def test_a_page_goes_to_the_address_the_policy_resolved_with_the_name_kept() -> None:
    """The connection uses the policy's resolver (here the only one that knows the name), and the
    request still names the host."""
    from alerts.notifier import send_json

    server = _Server((200, {}, b"ok"))
    policy = OutboundPolicy(allow_hosts=frozenset({"127.0.0.0/8"}), resolve=lambda _host: ["127.0.0.1"])
    try:
        send_json(f"json://receiver.example.com:{server.port}/hook", "t", "b", policy)
        with pytest.raises(httpx.ConnectError, match="loopback"):  # the public-only default refuses it
            send_json(f"json://127.0.0.1:{server.port}/hook", "t", "b")
    finally:
        server.close()
    [request] = server.requests
    assert request["headers"]["Host"] == f"receiver.example.com:{server.port}"
