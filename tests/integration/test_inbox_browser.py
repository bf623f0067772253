"""The CSM inbox in a real browser (Debian's Chromium, driven by Playwright): acknowledge a case."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect, sync_playwright

from feedback_tools.devstack import EmbeddedStack
from tests.helpers import eventually

pytestmark = pytest.mark.integration
Api = Callable[[str], httpx.Client]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def csm_token(stack: EmbeddedStack, csm: str) -> str:
    """A CSM's token, made as an operator would: ``feedbackctl tokens create`` (its last line)."""
    result = subprocess.run([sys.executable, "-m", "feedback_tools.ctl", "tokens", "create", "--role", "csm",
                             "--csm-id", csm, "--mongo-url", stack.config.mongo_url],
                            capture_output=True, text=True, timeout=60, check=True)
    return result.stdout.strip().splitlines()[-1]


def test_inbox_lists_the_case_by_priority_and_acknowledges_it(api: Api, stack: EmbeddedStack,
                                                              tmp_path: Path) -> None:
    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is needed for the browser test: `make install` installs it"
    csm, customer = f"csm-{uuid.uuid4().hex[:8]}", f"cust-{uuid.uuid4().hex[:8]}"
    api("alerts").put(f"/v1/csms/{csm}", json={"name": "Leyla"}).raise_for_status()
    api("alerts").put(f"/v1/accounts/{customer}", json={"csm_id": csm, "tier": "gold"}).raise_for_status()
    api("ingest").post("/v1/reviews", json={"source": "google", "external_id": f"r-{uuid.uuid4().hex}",
                                            "customer_id": customer, "rating": 1,
                                            "text": "Sifariş iki həftə gecikdi və heç kim cavab vermir!"}).raise_for_status()
    [case] = eventually(lambda: list(api("alerts").get("/v1/alerts", params={"csm": csm}).json()), timeout_s=30)

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{stack.config.service_url('alerts')}/?csm={csm}")
            # Signed out: the sign-in form, and nothing of the case.
            assert page.locator('input[name="token"]').count() == 1
            assert case["alert_id"] not in page.content()
            page.fill('input[name="token"]', csm_token(stack, csm))
            page.click('button[type="submit"]')
            page.goto(f"{stack.config.service_url('alerts')}/?csm={csm}")
            assert page.evaluate("document.cookie") == ""  # the session cookie is HttpOnly
            row = page.locator(f'tr[data-alert="{case["alert_id"]}"]')
            assert row.locator(".status").text_content() == "open"
            assert "Sifariş iki həftə gecikdi" in (row.text_content() or "")
            assert "min left" in (row.text_content() or "")  # the SLA clock
            row.locator('button[data-action="ack"]').click()
            # (Not wait_for_function: it evaluates a string, which the page's CSP rightly forbids.)
            expect(row.locator(".status")).to_have_text("acknowledged", timeout=10_000)
            page.screenshot(path=str(tmp_path / "inbox.png"))
        finally:
            browser.close()

    after = api("alerts").get(f"/v1/alerts/{case['alert_id']}").json()
    assert after["status"] == "acknowledged"
    assert after["acknowledged_at"]


def test_a_csm_token_checks_a_draft_reply_without_sending_it(api: Api, stack: EmbeddedStack) -> None:
    """Black-box, as the issue states it: a token from ``feedbackctl tokens create --role csm``."""
    csm, customer = f"csm-{uuid.uuid4().hex[:8]}", f"cust-{uuid.uuid4().hex[:8]}"
    api("alerts").put(f"/v1/csms/{csm}", json={"name": "Aigerim"}).raise_for_status()
    api("alerts").put(f"/v1/accounts/{customer}", json={"csm_id": csm, "email": f"{customer}@example.org"}
                      ).raise_for_status()
    api("ingest").post("/v1/reviews", json={"source": "google", "external_id": f"r-{uuid.uuid4().hex}",
                                            "customer_id": customer, "rating": 1,
                                            "text": "The order is two weeks late and nobody answers!"}).raise_for_status()
    [case] = eventually(lambda: list(api("alerts").get("/v1/alerts", params={"csm": csm}).json()), timeout_s=30)
    token = csm_token(stack, csm)
    with httpx.Client(base_url=stack.config.service_url("alerts"), headers={"Authorization": f"Bearer {token}"},
                      timeout=30) as alerts:
        def codes(text: str) -> list[str]:
            resp = alerts.post(f"/v1/alerts/{case['alert_id']}/replies", json={"text": text, "channel": "email",
                                                                              "send": False})
            assert resp.status_code == 200, resp.text
            findings = resp.json()["findings"]
            assert all({"code", "start", "end", "hint"} <= set(f) for f in findings)
            return [f["code"] for f in findings]

        assert "calm_down" in codes("Please calm down, sir.")
        assert "calm_down" in codes("Успокойтесь, пожалуйста.")
        assert "blame" in codes("This is your fault.")
        assert codes("We are sorry the order is late. We can refund the delivery fee or send a replacement "
                     "today; we will write to you by 15:00 on 4 December.") == []
        after = alerts.get(f"/v1/alerts/{case['alert_id']}").json()
        assert after["status"] == "open" and not after.get("replies")  # nothing was sent
