"""Closing the loop in a real browser (Debian's Chromium): a CSM signs in, opens a case, sees the
customer's timeline with an earlier purchase and an earlier case, sees the reply check flag "calm down"
as they type, sends a reply with no findings, and the customer's mailbox (a real SMTP server) gets it
while the case becomes ``responded``."""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from feedback_tools.devstack import EmbeddedStack
from tests.helpers import eventually
from tests.integration.conftest import CustomerMailbox
from tests.integration.test_inbox_browser import CHROMIUM_ARGS, csm_token

pytestmark = pytest.mark.integration
Api = Callable[[str], httpx.Client]
GOOD = ("Dear Anna, we are sorry the order arrived damaged. We can refund you or send a replacement; "
        "we will answer by 5 December at 14:00.")


def test_a_csm_works_a_case_to_a_reply_the_customer_receives(api: Api, stack: EmbeddedStack, tmp_path: Path,
                                                             customer_mailbox: CustomerMailbox) -> None:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is needed for the browser test"
    csm, customer = f"csm-{uuid.uuid4().hex[:8]}", f"cust-{uuid.uuid4().hex[:8]}"
    email = f"{customer}@example.org"
    api("alerts").put(f"/v1/csms/{csm}", json={"name": "Leyla"}).raise_for_status()
    api("alerts").put(f"/v1/accounts/{customer}", json={"csm_id": csm, "email": email, "language": "en",
                                                        "preferred_name": "Anna Smith"}).raise_for_status()
    api("ingest").post("/v1/purchases", json={"order_id": f"{customer}-o1", "customer_id": customer,
                                              "amount": "49.90", "currency": "EUR"}).raise_for_status()
    # An earlier case, resolved with a reply on record.
    api("ingest").post("/v1/reviews", json={"source": "google", "external_id": uuid.uuid4().hex,
                                            "customer_id": customer, "rating": 1,
                                            "text": "The first delivery was late and nobody answered."}).raise_for_status()
    [earlier] = eventually(lambda: [c for c in api("alerts").get("/v1/alerts", params={"limit": 500}).json()
                                    if c["customer_id"] == customer], timeout_s=60)
    api("alerts").post(f"/v1/alerts/{earlier['alert_id']}/replies",
                       json={"text": GOOD, "send": True}).raise_for_status()
    api("alerts").post(f"/v1/alerts/{earlier['alert_id']}/resolve", json={"outcome": "refunded"}).raise_for_status()
    # The case the CSM works now.
    api("ingest").post("/v1/reviews", json={"source": "google", "external_id": uuid.uuid4().hex,
                                            "customer_id": customer, "rating": 1,
                                            "text": "The blender arrived broken, this is unacceptable."}).raise_for_status()
    [case] = eventually(lambda: [c for c in api("alerts").get("/v1/alerts", params={"limit": 500}).json()
                                 if c["customer_id"] == customer and c["status"] == "open"], timeout_s=60)
    eventually(lambda: any(e["kind"] == "purchase" for e in
                           api("alerts").get(f"/v1/alerts/{case['alert_id']}").json()["timeline"]), timeout_s=30)
    before = len(customer_mailbox.to(email))

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{stack.config.service_url('alerts')}/")
            page.fill('input[name="token"]', csm_token(stack, csm))
            page.click('button[type="submit"]')
            page.click(f'tr[data-alert="{case["alert_id"]}"] a.open-case')
            expect(page.locator("#case-status")).to_have_text("open")
            expect(page.locator("#timeline .tl-purchase")).to_contain_text(f"{customer}-o1")
            expect(page.locator("#earlier")).to_contain_text("resolved")
            expect(page.locator("#earlier .earlier-reply")).to_contain_text("we are sorry")
            page.fill("#reply-text", "Please calm down, we are looking into it.")
            page.dispatch_event("#reply-text", "input")
            expect(page.locator('#findings li[data-code="calm_down"]')).to_have_count(1, timeout=10_000)
            page.fill("#reply-text", GOOD)
            page.dispatch_event("#reply-text", "input")
            expect(page.locator("#findings li")).to_have_count(0, timeout=10_000)
            page.click("#reply-send")
            expect(page.locator("#case-status")).to_have_text("responded", timeout=10_000)
            page.screenshot(path=str(tmp_path / "case-page.png"), full_page=True)
        finally:
            browser.close()

    mail = eventually(lambda: customer_mailbox.to(email)[before:], timeout_s=30)
    assert any("we are sorry the order arrived damaged" in (m.get_payload(decode=True) or b"").decode("utf-8", "replace")
               or "we are sorry the order arrived damaged" in str(m) for m in mail)
    after = api("alerts").get(f"/v1/alerts/{case['alert_id']}").json()
    assert after["status"] == "responded" and after["replies"][0]["by"]["csm_id"] == csm
