"""Observability on the real stack: a real Prometheus (Debian's binary) scrapes the four running
services with the project's alerting rules loaded, sees a negative review travel to a CSM page, and
every metric the Grafana dashboard queries is one the running services expose."""

from __future__ import annotations

import contextlib
import math
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from feedback_tools.devstack import SERVICES, EmbeddedStack, free_port, wait_for_http
from tests.helpers import Receiver, eventually, load_deploy_check, uid

pytestmark = pytest.mark.integration
Api = Callable[[str], httpx.Client]
REPO = Path(__file__).resolve().parents[2]


dc = load_deploy_check()


def _prometheus_binary() -> str:
    """Debian's prometheus (installed by ``make deploy-tools`` when missing, as root)."""
    found = shutil.which("prometheus")
    if found is None:
        res = subprocess.run(["make", "--no-print-directory", "deploy-tools"], cwd=REPO, capture_output=True,
                             text=True, timeout=600, check=False)
        assert res.returncode == 0, res.stdout + res.stderr
        found = shutil.which("prometheus")
    assert found, "the prometheus binary is needed: apt-get install prometheus (make deploy-tools)"
    return found


@pytest.fixture(scope="module")
def prometheus(stack: EmbeddedStack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    """Prometheus on a free loopback port scraping the session stack every second, with alerts.yml."""
    workdir = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(dc.PROMETHEUS_RULES)],
        "scrape_configs": [{
            "job_name": "feedback",  # as in deploy/prometheus/prometheus.yml: the rules select on it
            "metrics_path": "/metrics/",
            "static_configs": [
                {"targets": [f"{stack.config.host}:{stack.config.service_ports[name]}"], "labels": {"service": name}}
                for name, _, _ in SERVICES
            ],
        }],
    }
    config_file = workdir / "prometheus.yml"
    config_file.write_text(yaml.safe_dump(config), encoding="utf-8")
    log_path = workdir / "prometheus.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [_prometheus_binary(), f"--config.file={config_file}", f"--storage.tsdb.path={workdir / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10)
        try:
            wait_for_http(f"http://127.0.0.1:{port}/-/ready", 30, proc)
            yield client
        finally:
            client.close()
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
    assert proc.returncode is not None  # stopped, whatever happened above
    if proc.returncode not in (0, -15):
        print(log_path.read_text(errors="replace")[-4000:])  # noqa: T201


def query(prom: httpx.Client, expr: str) -> list[dict[str, Any]]:
    resp = prom.get("/api/v1/query", params={"query": expr})
    assert resp.status_code == 200, f"{expr}: {resp.text}"
    body = resp.json()
    assert body["status"] == "success", body
    return list(body["data"]["result"])


def scalar(prom: httpx.Client, expr: str) -> float:
    result = query(prom, expr)
    return float(result[0]["value"][1]) if result else 0.0



def test_prometheus_scrapes_every_service_and_sees_a_review_reach_a_csm(
    prometheus: httpx.Client, api: Api, receiver: Receiver
) -> None:
    def services_up() -> set[str] | None:
        result = query(prometheus, 'up{job="feedback"} == 1')
        return {r["metric"]["service"] for r in result} if len(result) == len(SERVICES) else None

    assert eventually(services_up, timeout_s=30) == {name for name, _, _ in SERVICES}

    csm, customer = uid("csm"), uid("cust")
    api("alerts").put(f"/v1/csms/{csm}", json={"name": "Nino", "notify": [receiver.url(csm)]}).raise_for_status()
    api("alerts").put(f"/v1/accounts/{customer}", json={"csm_id": csm, "tier": "gold"}).raise_for_status()
    review = {"source": "google", "external_id": uid("rev"), "customer_id": customer, "rating": 1,
              "text": "Broken on arrival, support never answered. Worst purchase ever, I want my money back!"}
    resp = api("ingest").post("/v1/reviews", json=review)
    assert resp.status_code == 202, resp.text
    eventually(lambda: receiver.bodies(csm), timeout_s=30)

    # What Prometheus scraped from the running pipeline (not what a test poked into a registry).
    assert eventually(lambda: scalar(prometheus, 'sum(feedback_ingested_total{source="google",kind="review"})') > 0,
                      timeout_s=20)
    assert eventually(lambda: scalar(prometheus, "sum(feedback_to_alert_seconds_count)") > 0, timeout_s=20)
    assert eventually(lambda: scalar(prometheus, 'sum(feedback_scored_total{label="negative"})') > 0, timeout_s=20)
    # The latency the FeedbackToAlertSlow rule watches is computable and, here, well under 10 s.
    # NaN until Prometheus holds two samples across the increase: wait for a number.
    def p95() -> float | None:
        result = query(prometheus, "histogram_quantile(0.95, sum by (le) (rate(feedback_to_alert_seconds_bucket[1m])))")
        value = float(result[0]["value"][1]) if result else math.nan
        return None if math.isnan(value) else value

    [value] = eventually(lambda: [v] if (v := p95()) is not None else None, timeout_s=30)
    assert value < 10


def test_the_alerting_rules_evaluate_without_errors_on_live_data(prometheus: httpx.Client) -> None:
    wanted = {r["alert"] for g in yaml.safe_load(dc.PROMETHEUS_RULES.read_text())["groups"] for r in g["rules"]}

    def rules() -> dict[str, str] | None:
        groups = prometheus.get("/api/v1/rules").json()["data"]["groups"]
        health = {r["name"]: r["health"] for g in groups for r in g["rules"]}
        return health if health and all(h != "unknown" for h in health.values()) else None

    health = eventually(rules, timeout_s=20)
    assert set(health) == wanted
    assert all(h == "ok" for h in health.values()), health


def test_every_dashboard_query_runs_on_prometheus(prometheus: httpx.Client) -> None:
    for expr in dc.dashboard_expressions():
        query(prometheus, expr.replace("$__rate_interval", "1m").replace("$__range", "1h"))


def test_every_metric_the_dashboard_and_rules_query_is_exposed_by_the_running_services(api: Api) -> None:
    exposed: set[str] = set()
    for name, _, _ in SERVICES:
        resp = api(name).get("/metrics/")
        assert resp.status_code == 200, f"{name}: {resp.status_code}"
        assert resp.headers["content-type"].startswith("text/plain")
        exposed |= dc.exposition_metric_names(resp.text)
    # A metric counts as exposed once its # HELP line is there: a labelled gauge such as
    # loyalty_repeat_purchase_ratio{currency} has no sample until the first purchase is seen.
    missing = dc.dashboard_metric_names() - exposed
    assert not missing, f"the dashboard queries metrics no running service exposes: {sorted(missing)}"
    missing = dc.rules_metric_names() - exposed
    assert not missing, f"alerts.yml queries metrics no running service exposes: {sorted(missing)}"


def test_metrics_answer_with_and_without_the_trailing_slash(api: Api) -> None:
    with contextlib.closing(httpx.Client(base_url=str(api("ingest").base_url), timeout=10)) as client:
        for path in ("/metrics", "/metrics/"):
            resp = client.get(path, follow_redirects=False)
            assert resp.status_code == 200 and "feedback_ingested_total" in resp.text, path
