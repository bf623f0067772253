"""Offline checks of everything under deploy/ (``make deploy-check``; tests/unit/test_deploy_files.py).

Each check returns a list of problems (empty: fine) and raises ``ToolMissing`` when the tool it needs
is not installed (``make deploy-tools`` installs them):

- ``compose``: deploy/docker-compose.yml, interpolated with deploy/.env.example as ``docker compose``
  would, validated against the vendored compose-spec JSON schema (deploy/schema), plus what the
  schema cannot see: every variable used is documented, depends_on targets exist, services have
  healthchecks, Prometheus scrapes what compose runs, mounted files exist.
- ``kubernetes``: every overlay in deploy/k8s/overlays built with ``kubectl kustomize`` and each object
  validated offline with kubernetes-validate (strict: unknown fields are errors), plus probes,
  resources, scrape annotations, Secret/ConfigMap key references, and NetworkPolicies (a default deny,
  every Deployment's pods selected, only ingest reachable from everywhere).
- ``env``: every variable named in the deploy files mapped onto the services' pydantic-settings
  classes (``ALERTS_KAFKA__BOOTSTRAP_SERVERS`` -> ``alerts.config.Settings.kafka.bootstrap_servers``),
  and each service's settings built from the values compose and each overlay give it.
- ``prometheus``: ``promtool check config``, ``promtool check rules`` and ``promtool test rules``.
- ``dashboard``: every metric the Grafana dashboard and the alerting rules query is one the services
  define (their metrics classes, in-process). The integration test checks the running services too.
- ``dockerfile``: hadolint, and the facts the images rely on (base image, non-root user, the pinned
  sentimentai-py the Makefile installs).

Usage: ``python tools/src/feedback_tools/deploy_check.py [--only NAME ...]``; exit status 1 when anything fails.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import importlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import types
import typing
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[3]
DEPLOY = REPO / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yml"
ENV_EXAMPLE = DEPLOY / ".env.example"
COMPOSE_SCHEMA = DEPLOY / "schema" / "compose-spec.json"
SCALEDOBJECT_SCHEMA = DEPLOY / "schema" / "keda-scaledobject.schema.json"
K8S_DIR = DEPLOY / "k8s"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
PROMETHEUS_RULES = DEPLOY / "prometheus" / "alerts.yml"
PROMETHEUS_RULES_TEST = DEPLOY / "prometheus" / "alerts_test.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "feedback.json"
GRAFANA_DATASOURCES = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
MAKEFILE = REPO / "Makefile"

#: The Kubernetes version the manifests are validated against (kubernetes-validate bundles schemas).
K8S_VERSION = os.environ.get("DEPLOY_CHECK_K8S_VERSION", "1.30")

#: (service, env prefix, HTTP port); the same table as feedback_tools.devstack.SERVICES.
SERVICES: tuple[tuple[str, str, int], ...] = (
    ("ingest", "INGEST_", 8000),
    ("sentiment", "SENTIMENT_", 8001),
    ("alerts", "ALERTS_", 8002),
    ("loyalty", "LOYALTY_", 8003),
)
PREFIXES = {prefix: name for name, prefix, _ in SERVICES}
#: Variables a service container may have that are not service settings.
NON_SETTINGS_ENV = {
    "KAFKA_BOOTSTRAP_SERVERS": "the topics-init one-shot reads it (not a service)",
    "PYTHONUNBUFFERED": "Python runtime",
}
#: Series Prometheus itself makes for every target.
PROMETHEUS_SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_series_added",
                        "scrape_samples_post_metric_relabeling"}


class ToolMissing(RuntimeError):
    """A tool a check needs is not installed: ``make deploy-tools`` installs it."""


# ---- tools -------------------------------------------------------------------------------------------
def find_tool(name: str) -> str:
    """The tool in this virtualenv's bin directory (pip-installed wheels), else on PATH."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise ToolMissing(f"{name} is not installed: run `make deploy-tools`")
    return found


def run(argv: list[str], cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)


def tool_versions() -> dict[str, str]:
    """The version of each tool the checks use (for the report)."""
    out: dict[str, str] = {}
    probes = {
        "kubectl": ["version", "--client"],
        "promtool": ["--version"],
        "hadolint": ["--version"],
    }
    for tool, args in probes.items():
        try:
            res = run([find_tool(tool), *args])
            lines = (res.stdout or res.stderr).strip().splitlines()
            out[tool] = " ".join(lines[:2] if tool == "kubectl" else lines[:1])
        except ToolMissing as exc:
            out[tool] = str(exc)
    from importlib.metadata import version

    for dist in ("kubernetes-validate", "jsonschema", "pydantic-settings", "prometheus-client"):
        out[dist] = version(dist)
    out["compose-spec schema"] = "deploy/schema/compose-spec.json (from check-jsonschema 0.39.0)"
    return out


# ---- .env files and compose interpolation ------------------------------------------------------------
def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines (comments and blank lines skipped; one pair of surrounding quotes removed)."""
    env: dict[str, str] = {}
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, sep, value = line.partition("=")
        key = key.strip().removeprefix("export ").strip()
        if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key):
            raise ValueError(f"{path}:{number}: not KEY=VALUE: {raw!r}")
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
            value = value[1:-1]
        env[key] = value
    return env


_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_BRACED = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>.*))?$", re.S)


def interpolate(value: str, env: Mapping[str, str], used: set[str] | None = None) -> str:
    """Compose's interpolation: ``$$``, ``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``,
    ``${VAR:?error}``, ``${VAR?error}``, ``${VAR:+alt}``, ``${VAR+alt}``, nested in defaults. Raises
    ``KeyError`` for a required variable that is unset (``:?``: or empty), as ``docker compose`` refuses."""
    out: list[str] = []
    i = 0
    while i < len(value):
        char = value[i]
        if char != "$" or i + 1 == len(value):
            out.append(char)
            i += 1
        elif value[i + 1] == "$":
            out.append("$")
            i += 2
        elif value[i + 1] == "{":
            depth, j = 1, i + 2
            while j < len(value) and depth:
                depth += {"{": 1, "}": -1}.get(value[j], 0)
                j += 1
            if depth:
                raise ValueError(f"unclosed ${{ in {value!r}")
            out.append(_substitute(value[i + 2 : j - 1], env, used))
            i = j
        elif m := _NAME.match(value, i + 1):
            if used is not None:
                used.add(m.group(0))
            out.append(env.get(m.group(0), ""))
            i = m.end()
        else:
            raise ValueError(f"invalid interpolation in {value!r} (write $$ for a literal $)")
    return "".join(out)


def _substitute(braced: str, env: Mapping[str, str], used: set[str] | None) -> str:
    spec = _BRACED.match(braced)
    if spec is None:
        raise ValueError(f"invalid interpolation ${{{braced}}}")
    name, op, arg = spec.group("name"), spec.group("op"), spec.group("arg") or ""
    if used is not None:
        used.add(name)
    current = env.get(name)
    if op is None:
        return current or ""
    if op in (":?", "?"):
        if current is None or (op == ":?" and current == ""):
            raise KeyError(f"{name}: {arg or 'required variable is not set'}")
        return current
    arg = interpolate(arg, env, used)
    if op == ":-":
        return current if current else arg
    if op == "-":
        return current if current is not None else arg
    if op == ":+":
        return arg if current else ""
    return arg if current is not None else ""  # "+"


def interpolate_tree(node: Any, env: Mapping[str, str], used: set[str], errors: list[str], where: str = "") -> Any:
    """Interpolate every string value (not the keys) of a loaded compose file."""
    if isinstance(node, dict):
        return {k: interpolate_tree(v, env, used, errors, f"{where}.{k}") for k, v in node.items()}
    if isinstance(node, list):
        return [interpolate_tree(v, env, used, errors, f"{where}[{i}]") for i, v in enumerate(node)]
    if isinstance(node, str):
        try:
            return interpolate(node, env, used)
        except (KeyError, ValueError) as exc:
            errors.append(f"compose{where}: {exc}")
            return node
    return node


def load_compose(path: Path = COMPOSE_FILE, env_example: Path = ENV_EXAMPLE) -> tuple[dict[str, Any], set[str], list[str]]:
    """The compose file interpolated with the documented example values, the variables it uses, errors."""
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    used: set[str] = set()
    errors: list[str] = []
    compose = interpolate_tree(raw, read_env_file(env_example), used, errors)
    return compose, used, errors


def service_environment(service: Mapping[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.partition("=") for item in env)
        return {k: v for k, _, v in pairs}
    return {str(k): "" if v is None else str(v) for k, v in env.items()}


# ---- (1) compose ---------------------------------------------------------------------------------------
def check_compose(path: Path = COMPOSE_FILE, env_example: Path = ENV_EXAMPLE,
                  schema_path: Path = COMPOSE_SCHEMA, prometheus_config: Path = PROMETHEUS_CONFIG) -> list[str]:
    import jsonschema

    compose, used, errors = load_compose(path, env_example)
    schema = json.loads(schema_path.read_text(encoding="utf-8"))
    validator_cls = jsonschema.validators.validator_for(schema)
    validator = validator_cls(schema)
    for err in sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path)):
        location = "/".join(str(p) for p in err.absolute_path) or "(top level)"
        errors.append(f"compose schema: {location}: {err.message}")

    documented = set(read_env_file(env_example))
    for name in sorted(used - documented):
        errors.append(f"compose uses ${{{name}}} but {env_example.name} does not document it")
    for name in sorted(documented - used):
        errors.append(f"{env_example.name} documents {name} but the compose file never uses it")

    services: dict[str, Any] = compose.get("services") or {}
    for name, svc in services.items():
        depends = svc.get("depends_on") or {}
        for target in depends if isinstance(depends, list) else depends.keys():
            if target not in services:
                errors.append(f"compose: {name} depends on unknown service {target!r}")
        if svc.get("restart") != "no" and "healthcheck" not in svc:
            errors.append(f"compose: long-running service {name} has no healthcheck")
        for volume in svc.get("volumes") or []:
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith((".", "/")) and not (path.parent / source).exists():
                errors.append(f"compose: {name} mounts {source}, which does not exist")

    for name, _, port in SERVICES:
        svc = services.get(name)
        if svc is None:
            errors.append(f"compose: service {name} is missing")
            continue
        env = service_environment(svc)
        prefix = {n: p for n, p, _ in SERVICES}[name]
        if env.get(f"{prefix}HTTP__PORT") != str(port):
            errors.append(f"compose: {name} must listen on {port} ({prefix}HTTP__PORT)")
        if svc.get("build", {}).get("args", {}).get("SERVICE") != name:
            errors.append(f"compose: {name} must be built with SERVICE={name}")
        test = " ".join(svc.get("healthcheck", {}).get("test", []))
        if f":{port}/readyz" not in test and f":{port}/healthz" not in test:
            errors.append(f"compose: {name}'s healthcheck must GET /readyz or /healthz on port {port}")
        conditions = {k: v.get("condition") for k, v in (svc.get("depends_on") or {}).items()}
        if conditions.get("topics-init") != "service_completed_successfully":
            errors.append(f"compose: {name} must wait for topics-init (service_completed_successfully)")

    # Prometheus scrapes exactly the four services, at the ports compose gives them.
    prom = yaml.safe_load(prometheus_config.read_text(encoding="utf-8"))
    targets = {t for job in prom.get("scrape_configs", []) if job.get("metrics_path") == "/metrics/"
               for sc in job.get("static_configs", []) for t in sc.get("targets", [])}
    expected = {f"{name}:{port}" for name, _, port in SERVICES}
    if targets != expected:
        errors.append(f"prometheus.yml scrapes {sorted(targets)}, compose runs {sorted(expected)}")
    return errors


# ---- (3) environment variables against the settings classes --------------------------------------------
def settings_class(service: str) -> type[Any]:
    return importlib.import_module(f"{service}.config").Settings  # type: ignore[no-any-return]


def _nested_model(annotation: Any) -> Any:
    """The BaseModel class inside ``X``, ``X | None``, ``Optional[X]``; ``dict`` for mapping fields."""
    from pydantic import BaseModel

    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            found = _nested_model(arg)
            if found is not None:
                return found
        return None
    if origin is typing.Annotated:
        return _nested_model(typing.get_args(annotation)[0])
    if origin is dict or annotation is dict:
        return dict
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    return None


def settings_field_error(name: str) -> str | None:
    """Why ``name`` is not a settings field of the service its prefix names (None: it is one)."""
    prefix = next((p for p in PREFIXES if name.startswith(p)), None)
    if prefix is None:
        return f"{name}: no service prefix ({', '.join(PREFIXES)})"
    service = PREFIXES[prefix]
    model: Any = settings_class(service)
    parts = name[len(prefix):].lower().split("__")
    for i, part in enumerate(parts):
        fields = model.model_fields
        if part not in fields:
            hint = difflib.get_close_matches(part, list(fields), n=1)
            where = f"{service}.config.Settings" + "".join(f".{p}" for p in parts[:i])
            return f"{name}: {where} has no field {part!r}" + (f" (did you mean {hint[0]!r}?)" if hint else "")
        if i == len(parts) - 1:
            return None
        nested = _nested_model(fields[part].annotation)
        if nested is dict:
            return None  # e.g. INGEST_WEBHOOK_SECRETS__GOOGLE: a key of a mapping field
        if nested is None:
            return f"{name}: {service}.config.Settings.{'.'.join(parts[: i + 1])} is not a nested model"
        model = nested
    return None


@contextlib.contextmanager
def isolated_environ(env: Mapping[str, str]) -> Iterator[None]:
    """os.environ with every service variable removed and ``env`` set; restored afterwards."""
    saved = dict(os.environ)
    try:
        for key in list(os.environ):
            if key.startswith(tuple(PREFIXES)):
                del os.environ[key]
        os.environ.update(env)
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def build_settings(service: str, env: Mapping[str, str]) -> Any:
    """The service's Settings as its process would build them from ``env``."""
    cls = settings_class(service)
    with isolated_environ(env), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ingest warns about the dev key in development
        return cls()


#: A value the operator replaces (the example files say so); checked here as the replacement would be.
PLACEHOLDER = "change-me"


def as_replaced(value: str) -> str:
    """``value`` with each ``change-me`` placeholder replaced by a strong stand-in, keeping its shape
    (a JSON list stays a list, a URL a URL): the services refuse placeholders in production."""
    return value.replace(PLACEHOLDER, "Kq7vX2mPz9LwT4rN8bYc3HjD6fGs5QaE") if PLACEHOLDER in value else value


def _settings_errors(where: str, service: str, env: Mapping[str, str]) -> list[str]:
    prefix = {n: p for n, p, _ in SERVICES}[service]
    own = {k: as_replaced(v) for k, v in env.items() if k.startswith(prefix)}
    try:
        build_settings(service, own)
    except Exception as exc:  # a pydantic ValidationError or a validator's ValueError
        return [f"{where}: {service} settings do not load: {' '.join(str(exc).split())}"]
    return []


def deploy_env_names(compose_path: Path = COMPOSE_FILE, env_example: Path = ENV_EXAMPLE,
                     k8s_dir: Path = K8S_DIR) -> list[tuple[str, str]]:
    """(where, NAME) for every variable the deploy files name: compose environments, .env.example,
    k8s ConfigMap/Secret keys and container env, in the rendered overlays."""
    names: list[tuple[str, str]] = []
    compose, _, _ = load_compose(compose_path, env_example)
    for svc_name, svc in (compose.get("services") or {}).items():
        if svc_name in PREFIXES.values() or svc_name == "topics-init":
            names += [(f"compose {svc_name}", k) for k in service_environment(svc)]
    names += [(env_example.name, k) for k in read_env_file(env_example) if k.startswith(tuple(PREFIXES))]
    names += [(str(p.relative_to(k8s_dir.parent)), k) for p in sorted(k8s_dir.rglob("secrets.env.example"))
              for k in read_env_file(p)]
    for overlay, docs in build_overlays(k8s_dir).items():
        for doc in docs:
            kind, meta = doc.get("kind"), doc.get("metadata", {})
            if kind in ("ConfigMap", "Secret"):
                names += [(f"{overlay} {kind} {meta.get('name')}", k) for k in (doc.get("data") or {})]
            for container in _containers(doc):
                names += [(f"{overlay} {kind} {meta.get('name')}", e["name"]) for e in container.get("env", [])]
    return names


def check_env(compose_path: Path = COMPOSE_FILE, env_example: Path = ENV_EXAMPLE,
              k8s_dir: Path = K8S_DIR) -> list[str]:
    errors: list[str] = []
    for where, name in deploy_env_names(compose_path, env_example, k8s_dir):
        if name.startswith(tuple(PREFIXES)):
            problem = settings_field_error(name)
            if problem:
                errors.append(f"{where}: {problem}")
        elif name not in NON_SETTINGS_ENV:
            errors.append(f"{where}: {name} is neither a service setting ({', '.join(PREFIXES)}…) nor a known "
                          f"runtime variable ({', '.join(sorted(NON_SETTINGS_ENV))})")

    # The values load: compose, interpolated with the documented examples ...
    compose, _, _ = load_compose(compose_path, env_example)
    for name, _, _ in SERVICES:
        svc = (compose.get("services") or {}).get(name)
        if svc is not None:
            errors += _settings_errors(f"compose {name}", name, service_environment(svc))
    # ... and each overlay, with what each Deployment's container gets from its ConfigMap and Secret.
    for overlay, docs in build_overlays(k8s_dir).items():
        for doc in docs:
            if doc.get("kind") != "Deployment":
                continue
            for container in _containers(doc):
                if container["name"] in PREFIXES.values():
                    errors += _settings_errors(f"{overlay} Deployment {container['name']}", container["name"],
                                               container_env(container, docs))
    return errors


# ---- (2) Kubernetes --------------------------------------------------------------------------------------
def overlays(k8s_dir: Path = K8S_DIR) -> list[Path]:
    return sorted(p for p in (k8s_dir / "overlays").iterdir() if (p / "kustomization.yaml").exists())


def kustomize(overlay: Path) -> list[dict[str, Any]]:
    """``kubectl kustomize`` on a copy of the tree in which every ``secrets.env`` is its
    ``secrets.env.example`` (an operator writes the real one; it is never committed)."""
    kubectl = find_tool("kubectl")
    k8s_root = overlay.parents[1]
    with tempfile.TemporaryDirectory(prefix="deploy-check-") as tmp:
        copy = Path(tmp) / "k8s"
        shutil.copytree(k8s_root, copy)
        # Always the example, even over a local secrets.env: the check must not depend on real secrets.
        for example in copy.rglob("secrets.env.example"):
            shutil.copyfile(example, example.with_name("secrets.env"))
        res = run([kubectl, "kustomize", str(copy / overlay.relative_to(k8s_root))])
    if res.returncode != 0:
        raise RuntimeError(f"kubectl kustomize {overlay.relative_to(k8s_root.parent)} failed: {res.stderr.strip()}")
    return [d for d in yaml.safe_load_all(res.stdout) if d]


_OVERLAY_CACHE: dict[Path, tuple[float, dict[str, list[dict[str, Any]]]]] = {}


def build_overlays(k8s_dir: Path = K8S_DIR) -> dict[str, list[dict[str, Any]]]:
    """Every overlay, rendered (cached while no file under k8s_dir changes)."""
    stamp = max(p.stat().st_mtime for p in k8s_dir.rglob("*") if p.is_file())
    cached = _OVERLAY_CACHE.get(k8s_dir)
    if cached and cached[0] == stamp:
        return cached[1]
    rendered = {f"k8s/overlays/{p.name}": kustomize(p) for p in overlays(k8s_dir)}
    _OVERLAY_CACHE[k8s_dir] = (stamp, rendered)
    return rendered


def _pod_spec(doc: Mapping[str, Any]) -> dict[str, Any]:
    spec = doc.get("spec") or {}
    if doc.get("kind") == "CronJob":
        spec = spec.get("jobTemplate", {}).get("spec", {})
    return dict(spec.get("template", {}).get("spec", {}))


def _containers(doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    spec = _pod_spec(doc)
    return list(spec.get("containers", [])) + list(spec.get("initContainers", []))


def _find(docs: Iterable[Mapping[str, Any]], kind: str, name: str) -> Mapping[str, Any] | None:
    return next((d for d in docs if d.get("kind") == kind and d.get("metadata", {}).get("name") == name), None)


def _data(doc: Mapping[str, Any]) -> dict[str, str]:
    import base64

    if doc.get("kind") == "Secret":
        out = {k: base64.b64decode(v).decode("utf-8") for k, v in (doc.get("data") or {}).items()}
        return out | dict(doc.get("stringData") or {})
    return dict(doc.get("data") or {})


def container_env(container: Mapping[str, Any], docs: list[dict[str, Any]]) -> dict[str, str]:
    """The environment a container gets from envFrom and env (ConfigMaps and Secrets resolved)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        for kind, ref in (("ConfigMap", "configMapRef"), ("Secret", "secretRef")):
            if ref in source:
                doc = _find(docs, kind, source[ref]["name"])
                env |= _data(doc) if doc else {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = item["value"]
        for kind, ref in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
            key_ref = item.get("valueFrom", {}).get(ref)
            if key_ref:
                doc = _find(docs, kind, key_ref["name"])
                if doc and key_ref["key"] in _data(doc):
                    env[item["name"]] = _data(doc)[key_ref["key"]]
    return env


def _check_references(overlay: str, doc: Mapping[str, Any], docs: list[dict[str, Any]]) -> list[str]:
    errors = []
    name = f"{overlay} {doc['kind']} {doc['metadata']['name']}"
    for container in _containers(doc):
        refs = [(s, "ConfigMap", "configMapRef") for s in container.get("envFrom", []) if "configMapRef" in s]
        refs += [(s, "Secret", "secretRef") for s in container.get("envFrom", []) if "secretRef" in s]
        for source, kind, ref in refs:
            if _find(docs, kind, source[ref]["name"]) is None and not source[ref].get("optional"):
                errors.append(f"{name}: envFrom {kind} {source[ref]['name']} does not exist")
        for item in container.get("env", []):
            for kind, ref in (("ConfigMap", "configMapKeyRef"), ("Secret", "secretKeyRef")):
                key_ref = item.get("valueFrom", {}).get(ref)
                if not key_ref or key_ref.get("optional"):
                    continue
                target = _find(docs, kind, key_ref["name"])
                if target is None or key_ref["key"] not in _data(target):
                    errors.append(f"{name}: {item['name']} needs key {key_ref['key']} of {kind} {key_ref['name']}")
    return errors


def selects(selector: Mapping[str, Any] | None, labels: Mapping[str, str]) -> bool:
    """Whether a Kubernetes label selector (``matchLabels`` and ``matchExpressions``) selects ``labels``;
    an empty selector selects everything."""
    selector = selector or {}
    if any(labels.get(k) != v for k, v in (selector.get("matchLabels") or {}).items()):
        return False
    for expr in selector.get("matchExpressions") or []:
        key, op, values = expr["key"], expr["operator"], expr.get("values") or []
        matched = {"In": key in labels and labels[key] in values,
                   "NotIn": key not in labels or labels[key] not in values,
                   "Exists": key in labels, "DoesNotExist": key not in labels}.get(op, False)
        if not matched:
            return False
    return True


#: Services whose pods may accept traffic from anywhere (the public API).
PUBLIC_SERVICES = frozenset({"ingest"})


def _open_to_everyone(rule: Mapping[str, Any]) -> bool:
    """An ingress rule that admits any source: no ``from``, an all-addresses ``ipBlock`` (without
    exceptions), or every pod of every namespace."""
    peers = rule.get("from") or []
    if not peers:
        return True
    for peer in peers:
        block = peer.get("ipBlock")
        if block and block.get("cidr") in ("0.0.0.0/0", "::/0") and not block.get("except"):
            return True
        if "namespaceSelector" in peer and not peer["namespaceSelector"] and not (peer.get("podSelector") or {}):
            return True
    return False


def check_network_policies(overlay: str, docs: list[dict[str, Any]]) -> list[str]:
    """A default deny (ingress and egress) for every pod of the namespace; every Deployment's pods
    selected by a policy that lets something reach them; only the public services open to everyone."""
    errors: list[str] = []
    policies = [d for d in docs if d.get("kind") == "NetworkPolicy"]
    if not any(not (p["spec"].get("podSelector") or {}) and {"Ingress", "Egress"} <= set(p["spec"].get("policyTypes", []))
               and not p["spec"].get("ingress") and not p["spec"].get("egress") for p in policies):
        errors.append(f"{overlay}: no default-deny NetworkPolicy (podSelector {{}}, Ingress and Egress, no rules)")
    for dep in (d for d in docs if d.get("kind") == "Deployment"):
        name = dep["metadata"]["name"]
        labels = dep["spec"]["template"]["metadata"].get("labels", {})
        admitting = [p for p in policies if p["spec"].get("ingress") and selects(p["spec"].get("podSelector"), labels)]
        if not admitting:
            errors.append(f"{overlay} Deployment {name}: no NetworkPolicy admits traffic to its pods")
        if name in PUBLIC_SERVICES:
            continue
        for policy in admitting:
            if any(_open_to_everyone(rule) for rule in policy["spec"]["ingress"]):
                errors.append(f"{overlay} NetworkPolicy {policy['metadata']['name']}: lets anyone reach {name} "
                              f"(only {', '.join(sorted(PUBLIC_SERVICES))} may be reached from everywhere)")
    return errors


def check_scaled_object(label: str, doc: Mapping[str, Any], docs: list[dict[str, Any]]) -> list[str]:
    """A KEDA ScaledObject: valid against the strict schema in deploy/schema, scaling a Deployment of the
    overlay on the lag of a topic of the registry, as the consumer group that Deployment really runs,
    reading the brokers from a variable the container has, never past the topic's partitions."""
    import jsonschema

    from feedback_shared.config import KafkaSettings
    from feedback_shared.topics import ALL_TOPICS

    validator = jsonschema.Draft202012Validator(json.loads(SCALEDOBJECT_SCHEMA.read_text("utf-8")))
    problems = [f"{label}: {'/'.join(map(str, e.path))}: {e.message}" for e in validator.iter_errors(doc)]
    if problems:
        return problems
    errors: list[str] = []
    spec = doc["spec"]
    target = spec["scaleTargetRef"]["name"]
    deployment = _find(docs, "Deployment", target)
    if deployment is None:
        return [f"{label}: no Deployment {target}"]
    if any(d.get("kind") == "HorizontalPodAutoscaler" and d["spec"]["scaleTargetRef"]["name"] == target for d in docs):
        errors.append(f"{label}: Deployment {target} also has an HPA of its own (KEDA makes one)")
    partitions = {t.name: t.partitions for t in ALL_TOPICS}
    group = f"{KafkaSettings().group_prefix}-{target}"
    env = {e["name"] for c in _containers(deployment) for e in c.get("env", [])}
    env |= {k for d in docs if d.get("kind") == "ConfigMap" for k in (d.get("data") or {})}
    for trigger in spec["triggers"]:
        meta = trigger["metadata"]
        if meta["topic"] not in partitions:
            errors.append(f"{label}: topic {meta['topic']} is not in the registry")
        elif spec.get("maxReplicaCount", 100) > partitions[meta["topic"]]:
            errors.append(f"{label}: maxReplicaCount above the {partitions[meta['topic']]} partitions of "
                          f"{meta['topic']} (the extra replicas would sit idle)")
        if meta["consumerGroup"] != group:
            errors.append(f"{label}: consumerGroup {meta['consumerGroup']} is not {target}'s group ({group})")
        if "bootstrapServersFromEnv" in meta and meta["bootstrapServersFromEnv"] not in env:
            errors.append(f"{label}: {meta['bootstrapServersFromEnv']} is not set for the {target} container")
    return errors


def check_kubernetes(k8s_dir: Path = K8S_DIR) -> list[str]:
    import kubernetes_validate

    errors: list[str] = []
    rendered = build_overlays(k8s_dir)
    if not rendered:
        return [f"no overlays under {k8s_dir}/overlays"]
    for overlay, docs in rendered.items():
        for doc in docs:
            label = f"{overlay} {doc.get('kind')} {doc.get('metadata', {}).get('name')}"
            if doc.get("kind") == "ScaledObject":
                errors += check_scaled_object(label, doc, docs)
                continue
            try:
                kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
            except kubernetes_validate.ValidationError as exc:
                path = "/".join(str(p) for p in exc.path)
                errors.append(f"{label}: {path}: {exc.message} (Kubernetes {K8S_VERSION} schema)")
            except kubernetes_validate.SchemaNotFoundError as exc:
                errors.append(f"{label}: {exc.message}")
            errors += _check_references(overlay, doc, docs)

        errors += check_network_policies(overlay, docs)
        deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
        for name, _, port in SERVICES:
            dep = deployments.get(name)
            if dep is None:
                errors.append(f"{overlay}: Deployment {name} is missing")
                continue
            [container] = [c for c in _containers(dep) if c["name"] == name] or [{}]
            ready = container.get("readinessProbe", {}).get("httpGet", {}).get("path")
            live = container.get("livenessProbe", {}).get("httpGet", {}).get("path")
            if ready != "/readyz" or live != "/healthz":
                errors.append(f"{overlay} {name}: readiness must GET /readyz and liveness /healthz "
                              f"(got {ready}, {live})")
            resources = container.get("resources", {})
            for part in ("requests", "limits"):
                if not {"cpu", "memory"} <= set(resources.get(part, {})):
                    errors.append(f"{overlay} {name}: resources.{part} needs cpu and memory")
            ann = dep["spec"]["template"]["metadata"].get("annotations", {})
            if (ann.get("prometheus.io/scrape"), ann.get("prometheus.io/port"), ann.get("prometheus.io/path")) != (
                    "true", str(port), "/metrics/"):
                errors.append(f"{overlay} {name}: pod needs prometheus.io/scrape=true, port={port}, path=/metrics/")
            ports = {p.get("containerPort") for p in container.get("ports", [])}
            if port not in ports:
                errors.append(f"{overlay} {name}: container must expose {port}")
            if not _find(docs, "Service", name):
                errors.append(f"{overlay}: Service {name} is missing")
        for hpa in (d for d in docs if d["kind"] == "HorizontalPodAutoscaler"):
            target = hpa["spec"]["scaleTargetRef"]["name"]
            if target not in deployments:
                errors.append(f"{overlay} HPA {hpa['metadata']['name']}: no Deployment {target}")
        if not any(d["kind"] == "HorizontalPodAutoscaler" and d["apiVersion"] == "autoscaling/v2" for d in docs):
            errors.append(f"{overlay}: no autoscaling/v2 HorizontalPodAutoscaler")
        if not any(d["kind"] == "Job" for d in docs):
            errors.append(f"{overlay}: no topic-creation Job")
        for svc in (d for d in docs if d["kind"] == "Service" and d["spec"].get("type") != "ExternalName"):
            selector = svc["spec"].get("selector", {})
            if not any(selector.items() <= d["spec"]["template"]["metadata"].get("labels", {}).items()
                       for d in deployments.values()):
                errors.append(f"{overlay} Service {svc['metadata']['name']}: selector matches no Deployment")
    return errors


# ---- (4) Prometheus --------------------------------------------------------------------------------------
def check_prometheus(config: Path = PROMETHEUS_CONFIG, rules: Path = PROMETHEUS_RULES,
                     rules_test: Path | None = PROMETHEUS_RULES_TEST) -> list[str]:
    promtool = find_tool("promtool")
    errors = []
    commands = [["check", "config", str(config)], ["check", "rules", str(rules)]]
    if rules_test is not None:
        commands.append(["test", "rules", str(rules_test)])
    for args in commands:
        res = run([promtool, *args], cwd=rules.parent)
        if res.returncode != 0:
            detail = " ".join((res.stdout + res.stderr).split())
            errors.append(f"promtool {' '.join(args[:2])} {Path(args[2]).name}: {detail}")
    return errors


# ---- (5) metric names --------------------------------------------------------------------------------------
_PROMQL_WORDS = {
    "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless",
    "inf", "nan", "atan2",
}


def promql_metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression selects (functions, keywords, labels and durations left out)."""
    s = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"\boffset\s+-?[0-9a-zA-Z]+", " ", s)
    names = set()
    for m in re.finditer(r"(?<![\w:.$])([a-zA-Z_:][a-zA-Z0-9_:]*)(\s*\()?", s):
        if m.group(2) or m.group(1).lower() in _PROMQL_WORDS:
            continue
        names.add(m.group(1))
    return names


def dashboard_expressions(path: Path = DASHBOARD) -> list[str]:
    dashboard = json.loads(path.read_text(encoding="utf-8"))

    def walk(panels: list[dict[str, Any]]) -> Iterator[str]:
        for panel in panels:
            for target in panel.get("targets", []):
                if target.get("expr"):
                    yield target["expr"]
            yield from walk(panel.get("panels", []))

    exprs = list(walk(dashboard.get("panels", [])))
    for var in dashboard.get("templating", {}).get("list", []):
        query = var.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if var.get("type") == "query" and isinstance(query, str):
            exprs.append(re.sub(r"^(label_values|query_result)\((.*)\)$", r"\2", query.strip()))
    return exprs


def dashboard_metric_names(path: Path = DASHBOARD) -> set[str]:
    return set().union(*(promql_metric_names(e) for e in dashboard_expressions(path))) - PROMETHEUS_SYNTHETIC


def rules_metric_names(path: Path = PROMETHEUS_RULES) -> set[str]:
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    exprs = [r["expr"] for g in doc.get("groups", []) for r in g.get("rules", [])]
    return set().union(*(promql_metric_names(e) for e in exprs)) - PROMETHEUS_SYNTHETIC


def exposition_metric_names(text: str) -> set[str]:
    """Series names a Prometheus text exposition offers: sample names, every name with a ``# HELP``
    or ``# TYPE`` line (a labelled metric has those before it has any sample), and a histogram's or
    summary's ``_bucket``/``_sum``/``_count``."""
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith(("# HELP ", "# TYPE ")):
            parts = line.split()
            names.add(parts[2])
            if line.startswith("# TYPE ") and len(parts) > 3:
                family, kind = parts[2], parts[3]
                if kind == "histogram":
                    names |= {f"{family}_bucket", f"{family}_sum", f"{family}_count"}
                elif kind == "summary":
                    names |= {f"{family}_sum", f"{family}_count"}
                elif kind == "counter" and not family.endswith("_total"):
                    names.add(f"{family}_total")
        elif line and not line.startswith("#"):
            m = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line)
            if m:
                names.add(m.group(0))
    return names


def service_metric_names() -> dict[str, set[str]]:
    """Per service, the names its metrics class registers (built in-process, on a fresh registry)."""
    from prometheus_client import CollectorRegistry, generate_latest

    classes = {"ingest": "IngestMetrics", "sentiment": "SentimentMetrics", "alerts": "AlertsMetrics",
               "loyalty": "LoyaltyMetrics"}
    out = {}
    for service, cls_name in classes.items():
        registry = CollectorRegistry()
        getattr(importlib.import_module(f"{service}.metrics"), cls_name).create(registry)
        if service != "ingest":  # the consuming services also register the lag collector (their main.py)
            from feedback_shared.kafka import ConsumerLagCollector

            registry.register(ConsumerLagCollector())
        out[service] = exposition_metric_names(generate_latest(registry).decode("utf-8"))
    return out


def check_dashboard(path: Path = DASHBOARD, rules: Path = PROMETHEUS_RULES,
                    datasources: Path = GRAFANA_DATASOURCES) -> list[str]:
    errors = []
    known = set().union(*service_metric_names().values())
    wanted = dashboard_metric_names(path)
    if not wanted:
        errors.append(f"{path.name}: no PromQL expressions found")
    for name in sorted(wanted - known):
        hint = difflib.get_close_matches(name, sorted(known), n=1)
        errors.append(f"{path.name} queries {name}, which no service exports"
                      + (f" (did you mean {hint[0]}?)" if hint else ""))
    for name in sorted(rules_metric_names(rules) - known):
        errors.append(f"{rules.name} queries {name}, which no service exports")
    # The dashboard's datasource is the provisioned one.
    uids = {d.get("uid") for d in yaml.safe_load(datasources.read_text(encoding="utf-8"))["datasources"]}
    dashboard = json.loads(path.read_text(encoding="utf-8"))
    for panel in dashboard.get("panels", []):
        uid = (panel.get("datasource") or {}).get("uid")
        if panel.get("type") != "row" and uid not in uids:
            errors.append(f"{path.name}: panel {panel.get('title')!r} uses datasource {uid!r}, provisioned: {uids}")
    return errors


# ---- Dockerfile -----------------------------------------------------------------------------------------------
def check_dockerfile(path: Path = DOCKERFILE, makefile: Path = MAKEFILE) -> list[str]:
    errors = []
    res = run([find_tool("hadolint"), "--no-color", str(path)])
    if res.returncode != 0:
        errors += [f"hadolint: {line}" for line in (res.stdout + res.stderr).strip().splitlines()]
    text = path.read_text(encoding="utf-8")
    if "python:3.11-slim" not in text:
        errors.append("Dockerfile: the base image must be python:3.11-slim")
    if not re.search(r"^FROM .* AS build$", text, re.M) or not re.search(r"^COPY --from=build ", text, re.M):
        errors.append("Dockerfile: expected a build stage whose venv the runtime stage copies")
    if not re.search(r"^ARG SERVICE$", text, re.M):
        errors.append("Dockerfile: ARG SERVICE missing")
    users = re.findall(r"^USER (\S+)", text, re.M)
    if not users or users[-1].split(":")[0] in ("root", "0"):
        errors.append("Dockerfile: the runtime stage must end as a non-root USER")
    pin = re.search(r"sentimentai-py==([\w.]+)", makefile.read_text(encoding="utf-8"))
    if pin and f"sentimentai-py=={pin.group(1)}" not in text:
        errors.append(f"Dockerfile: install sentimentai-py=={pin.group(1)} (--no-deps), as the Makefile does")
    ignore = path.with_name(path.name + ".dockerignore")
    if not ignore.exists():
        errors.append(f"{ignore.name} missing: the build context would include .venv and .data")
    return errors


# ---- running them ----------------------------------------------------------------------------------------------
CHECKS: dict[str, Callable[[], list[str]]] = {
    "compose": check_compose,
    "kubernetes": check_kubernetes,
    "env": check_env,
    "prometheus": check_prometheus,
    "dashboard": check_dashboard,
    "dockerfile": check_dockerfile,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--only", action="append", choices=sorted(CHECKS), help="run only this check (repeatable)")
    parser.add_argument("--versions", action="store_true", help="print the tools' versions first")
    args = parser.parse_args(argv)
    if args.versions:
        for tool, ver in tool_versions().items():
            print(f"  {tool:<22} {ver}")
    failed = 0
    for name in args.only or list(CHECKS):
        started = time.monotonic()
        try:
            problems = CHECKS[name]()
        except Exception as exc:
            problems = [f"{type(exc).__name__}: {exc}"]
        took = time.monotonic() - started
        print(f"{'ok  ' if not problems else 'FAIL'} {name:<11} ({took:.1f}s)")
        for problem in problems:
            print(f"       - {problem}")
        failed += bool(problems)
    print("deploy-check: " + ("all checks passed" if not failed else f"{failed} check(s) failed"))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
