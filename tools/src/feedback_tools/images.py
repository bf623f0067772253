"""``make images``: the four service images, and the smoke test that runs them (``make deploy-check``).

Built with docker where an engine answers, and otherwise with podman from a local base image: no image
can be pulled on the development machines, so ``deploy/podman-base.sh`` debootstraps one
(``localhost/pybase:3.11``) the first time. Each image holds the shared library and its own service
only (``deploy/Dockerfile``).

The smoke test starts the four images in production mode on the host network against the embedded
broker and database, sends a purchase and a negative review of its product through ingest, and waits
for the case in alerts and the review bonus on loyalty's ledger.
"""

from __future__ import annotations

import argparse
import json
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

from feedback_tools.devstack import SERVICES, EmbeddedStack, StackConfig, free_port, wait_for_http
from feedback_tools.receiver import StandInReceiver

REPO = Path(__file__).resolve().parents[3]
OUT = Path("build/images")
BASE_IMAGE = "localhost/pybase:3.11"
#: The flags podman needs in this sandbox (crun and systemd cgroups do not work here).
PODMAN = ["podman", "--runtime", "runc", "--cgroup-manager=cgroupfs"]
ULIMITS = ["--ulimit", "nofile=1024:20000", "--ulimit", "nproc=4096:4096"]


class NoEngine(RuntimeError):
    pass


def engine() -> list[str]:
    """The container engine's command: docker if its engine answers, else podman."""
    if shutil.which("docker"):
        try:
            if subprocess.run(["docker", "info"], capture_output=True, timeout=20, check=False).returncode == 0:
                return ["docker"]
        except subprocess.TimeoutExpired:
            pass
    if shutil.which("podman"):
        return PODMAN
    raise NoEngine("neither a docker engine nor podman is available (apt-get install podman)")


def is_podman(cmd: list[str]) -> bool:
    return cmd[0] == "podman"


def ensure_base(cmd: list[str]) -> list[str]:
    """Build arguments for the base image: none for docker (it pulls python:3.11-slim); for podman the
    local base, made by deploy/podman-base.sh if it is not there yet."""
    if not is_podman(cmd):
        return []
    if subprocess.run([*cmd, "image", "exists", BASE_IMAGE], check=False).returncode != 0:
        print(f"Making the local base image {BASE_IMAGE} (debootstrap, a few minutes) …", flush=True)
        subprocess.run(["bash", str(REPO / "deploy" / "podman-base.sh"), BASE_IMAGE], check=True)
    return ["--build-arg", f"PYTHON_IMAGE={BASE_IMAGE}"]


def tag(service: str) -> str:
    return f"localhost/feedback-pipeline/{service}:dev"


def build(cmd: list[str], service: str, base_args: list[str]) -> None:
    network = ["--network", "host", *ULIMITS] if is_podman(cmd) else []
    subprocess.run([*cmd, "build", *network, "-f", str(REPO / "deploy" / "Dockerfile"), "--build-arg",
                    f"SERVICE={service}", *base_args, "-t", tag(service), str(REPO)], check=True)


def size_mb(cmd: list[str], ref: str) -> float:
    out = subprocess.run([*cmd, "image", "inspect", "--format", "{{.Size}}", ref], capture_output=True, text=True,
                         check=True).stdout
    return int(out.strip()) / 1e6


def build_all(services: list[str]) -> dict[str, Any]:
    cmd = engine()
    base_args = ensure_base(cmd)
    sizes: dict[str, float] = {}
    for service in services:
        started = time.monotonic()
        print(f"Building {tag(service)} …", flush=True)
        build(cmd, service, base_args)
        sizes[service] = round(size_mb(cmd, tag(service)), 1)
        print(f"  {tag(service)}: {sizes[service]:.0f} MB, built in {time.monotonic() - started:.0f} s", flush=True)
    result: dict[str, Any] = {"engine": cmd[0], "images_mb": sizes}
    if is_podman(cmd):
        result["base_image"] = BASE_IMAGE
        result["base_mb"] = round(size_mb(cmd, BASE_IMAGE), 1)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "sizes.json").write_text(json.dumps(result, indent=2))
    return result


# ---- the smoke test ------------------------------------------------------------------------------------
@contextmanager
def containers(cmd: list[str], stack: EmbeddedStack, ports: dict[str, int], key: str) -> Iterator[list[str]]:
    """The four images, in production mode, on the host network; removed afterwards."""
    prefixes = {name: prefix for name, prefix, _ in SERVICES}
    started: list[str] = []
    try:
        for name, _, _ in SERVICES:
            p = prefixes[name]
            env = {
                f"{p}ENVIRONMENT": "production", f"{p}HTTP__HOST": "127.0.0.1", f"{p}HTTP__PORT": str(ports[name]),
                f"{p}KAFKA__BOOTSTRAP_SERVERS": stack.config.bootstrap, f"{p}KAFKA__GROUP_PREFIX": f"smoke-{key[:6]}",
                f"{p}KAFKA__REBALANCE_TIMEOUT_S": "3", f"{p}MONGO__URL": stack.config.mongo_url,
                f"{p}MONGO__RETRY_WRITES": "false", f"{p}API_KEYS": json.dumps([key]),
                f"{p}AUTH__METRICS_PUBLIC": "true", "ALERTS_SESSION_SECRET": secrets.token_urlsafe(32),
                "ALERTS_OUTBOUND_ALLOW_HOSTS": '["127.0.0.0/8"]', f"{p}PSEUDONYM_KEY": secrets.token_urlsafe(32),
                **{k: v for k, v in stack.config.extra_env.items() if k.startswith(p)},
            }
            flags = [flag for k, v in env.items() for flag in ("-e", f"{k}={v}")]
            name_flag = f"feedback-smoke-{name}-{key[:6]}"
            subprocess.run([*cmd, "run", "-d", "--rm", "--name", name_flag, "--network", "host",
                            *(ULIMITS if is_podman(cmd) else []), *flags, tag(name)], check=True, capture_output=True)
            started.append(name_flag)
        yield started
    finally:
        for name_flag in started:
            with (stack.log_dir / f"{name_flag}.log").open("wb") as log:
                subprocess.run([*cmd, "logs", name_flag], stdout=log, stderr=subprocess.STDOUT, check=False)
            subprocess.run([*cmd, "rm", "-f", name_flag], capture_output=True, check=False)


def smoke() -> dict[str, Any]:
    """One negative review through the four images: the case in alerts, the review bonus in loyalty."""
    cmd = engine()
    for name, _, _ in SERVICES:
        if subprocess.run([*cmd, "image", "exists" if is_podman(cmd) else "inspect", tag(name)],
                          capture_output=True, check=False).returncode != 0:
            raise NoEngine(f"no image {tag(name)}: run `make images` first")
    pages = StandInReceiver()
    key = secrets.token_urlsafe(24)
    ports = {name: free_port() for name, _, _ in SERVICES}
    config = StackConfig(broker_port=free_port(), mongo_port=free_port(), data_dir=Path(tempfile.mkdtemp(prefix="smoke-")),
                         service_ports=ports,
                         extra_env={"ALERTS_FALLBACK_NOTIFY": json.dumps([pages.url("page")])})
    stack = EmbeddedStack(config)
    customer, product = f"smoke-{uuid.uuid4().hex[:8]}", "sku-smoke"
    started = time.monotonic()
    try:
        stack.start_infrastructure()
        with containers(cmd, stack, ports, key):
            for name in ports:
                wait_for_http(f"{config.service_url(name)}/readyz", 120)
            auth = {"Authorization": f"Bearer {key}"}
            # Loyalty pays a review bonus only for something the customer bought (on its own record).
            httpx.post(f"{config.service_url('ingest')}/v1/purchases", headers=auth, timeout=10, json={
                "order_id": f"{customer}-o1", "customer_id": customer, "amount": "49.90", "currency": "EUR",
                "items": [{"sku": product}]}).raise_for_status()
            review = {"source": "google", "external_id": f"smoke-{uuid.uuid4().hex}", "customer_id": customer,
                      "product_id": product, "rating": 1,
                      "text": "Terrible: the blender broke on the first day and nobody answers my e-mails."}
            accepted = httpx.post(f"{config.service_url('ingest')}/v1/reviews", json=review, headers=auth, timeout=10)
            accepted.raise_for_status()
            deadline = time.monotonic() + 90
            case: dict[str, Any] | None = None
            entries: list[dict[str, Any]] = []
            while time.monotonic() < deadline and (case is None or not entries or not pages.count):
                cases = httpx.get(f"{config.service_url('alerts')}/v1/alerts", headers=auth, timeout=10).json()
                case = next((c for c in cases if c.get("customer_id") == customer), None)
                points = httpx.get(f"{config.service_url('loyalty')}/v1/customers/{customer}/points",
                                   headers=auth, timeout=10)
                entries = points.json().get("ledger", []) if points.status_code == 200 else []
                time.sleep(1)
            result = {"accepted": accepted.json()["status"], "case": case["alert_id"] if case else None,
                      "case_status": case["status"] if case else None, "ledger": [e.get("rule") for e in entries],
                      "pages": pages.count, "seconds": round(time.monotonic() - started, 1),
                      "logs": str(stack.log_dir)}
            result["ok"] = bool(case and entries and pages.count)
            return result
    finally:
        stack.stop()
        pages.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="feedback_tools.images", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="run the smoke test on images already built")
    parser.add_argument("services", nargs="*", default=[name for name, _, _ in SERVICES])
    args = parser.parse_args(argv)
    try:
        if args.smoke:
            result = smoke()
            print(json.dumps(result, indent=2))
            return 0 if result["ok"] else 1
        result = build_all(args.services)
    except NoEngine as exc:
        print(f"images: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
