"""``feedbackctl up`` as an operator runs it: refuses a taken port, stops every process on Ctrl-C."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from feedback_tools.devstack import free_port
from tests.helpers import eventually

pytestmark = pytest.mark.integration
CTL = [sys.executable, "-m", "feedback_tools.ctl", "up"]


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if ppid == pid:
                found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def ctl_env(tmp_path: Path) -> dict[str, str]:
    ports = {name: free_port() for name in ("BROKER", "MONGO", "INGEST", "SENTIMENT", "ALERTS", "LOYALTY")}
    env = {**os.environ, "DEMO": "0", "FEEDBACK_DATA_DIR": str(tmp_path / "data"), "FEEDBACK_API_KEY": "ctl-key"}
    env.update({f"FEEDBACK_{name}_PORT": str(port) for name, port in ports.items()})
    return env


def test_up_refuses_a_taken_port_and_names_it(tmp_path: Path) -> None:
    env = ctl_env(tmp_path)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(env["FEEDBACK_ALERTS_PORT"])))
        squatter.listen()
        result = subprocess.run(CTL, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert f"alerts port {env['FEEDBACK_ALERTS_PORT']}" in result.stderr
    assert "already in use" in result.stderr


def test_up_serves_the_pipeline_and_ctrl_c_stops_every_process(tmp_path: Path) -> None:
    env = ctl_env(tmp_path)
    proc = subprocess.Popen(CTL, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        ingest = f"http://127.0.0.1:{env['FEEDBACK_INGEST_PORT']}"
        eventually(lambda: any("The pipeline is running" in line for line in lines), timeout_s=120, interval_s=0.5)
        children = children_of(proc.pid)
        assert len(children) == 6, children  # broker, database, four services
        resp = httpx.post(f"{ingest}/v1/reviews", headers={"Authorization": "Bearer ctl-key"},
                          json={"source": "google", "external_id": "ctl-1", "text": "Broken on arrival, awful."})
        assert resp.status_code == 202
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=90)
        reader.join(timeout=10)
    output = "".join(lines)
    assert proc.returncode == 0, output
    assert "Ingest API" in output and "/openapi.json" in output and "CSM inbox" in output and "Stopped." in output
    time.sleep(0.5)
    assert [pid for pid in children if alive(pid)] == []


def test_killing_what_started_feedbackctl_stops_the_stack(tmp_path: Path) -> None:
    """`make run` killed (not Ctrl-C'd): feedbackctl learns its parent died and stops every process."""
    env = ctl_env(tmp_path)
    command = " ".join([*CTL, ">", str(tmp_path / "ctl.log"), "2>&1;", "echo", "ended"])
    parent = subprocess.Popen(["sh", "-c", command], env=env)
    try:
        ctl = eventually(lambda: children_of(parent.pid), timeout_s=30)[0]
        eventually(lambda: "The pipeline is running" in (tmp_path / "ctl.log").read_text(), timeout_s=120,
                   interval_s=0.5)
        stack = children_of(ctl)
        assert len(stack) == 6
    finally:
        parent.kill()  # SIGKILL: the parent cannot pass anything on
        parent.wait(timeout=10)
    eventually(lambda: not alive(ctl) and not [p for p in stack if alive(p)], timeout_s=60, interval_s=0.5)
    assert "Stopped." in (tmp_path / "ctl.log").read_text()
