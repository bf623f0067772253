"""`schemathesis run --checks all`, as the security issue states it: the real command line, with a token,
against each running service's ``/openapi.json``, backed by the real broker and database (the unit suite's
OpenAPI test runs the same checks in-process, on fakes, and missed what only MongoDB refuses).

A short form (few examples, a fixed seed: the same cases every run); ``make fuzz`` runs it with more
examples and a new seed each time. It runs after every other integration test: it acts on any case,
account and customer it can find, which the others read.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from feedback_tools.devstack import SERVICES, EmbeddedStack
from tests.integration.conftest import API_KEY

pytestmark = [pytest.mark.integration, pytest.mark.last]
ROOT = Path(__file__).resolve().parents[2]
SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
#: ``make fuzz`` sets FUZZ_RANDOM=1 and FUZZ_EXAMPLES; ``make test`` runs the short, fixed form.
RANDOM = os.environ.get("FUZZ_RANDOM") == "1"
EXAMPLES = min(int(os.environ.get("FUZZ_EXAMPLES", "10")), 200) if RANDOM else 10


def schemathesis_run(url: str, *, examples: int, seed: int | None) -> subprocess.CompletedProcess[str]:
    command = [SCHEMATHESIS, "--config-file", str(ROOT / "schemathesis.toml"), "run", f"{url}/openapi.json",
               "--checks", "all", "-H", f"Authorization: Bearer {API_KEY}", "--max-examples", str(examples)]
    if seed is not None:
        command += ["--seed", str(seed)]
    return subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT, check=False)


@pytest.mark.parametrize("service", [name for name, _, _ in SERVICES])
def test_schemathesis_run_with_every_check_finds_nothing(stack: EmbeddedStack, service: str) -> None:
    result = schemathesis_run(stack.config.service_url(service), examples=EXAMPLES, seed=None if RANDOM else 1)
    tail = result.stdout[-6000:]
    assert result.returncode == 0, f"schemathesis found problems on {service}:\n{tail}\n{result.stderr[-2000:]}"
    assert " generated, " in result.stdout and " passed" in result.stdout, tail
