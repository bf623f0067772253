"""The layout the code relies on: the shared library is the contract and the adapters, and imports no
service and no tool; the services import no tool; the sentiment runtime does not import its training."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SERVICES = ("ingest", "sentiment", "alerts", "loyalty")


def imported_packages(root: Path) -> dict[str, set[str]]:
    """Top-level packages each module under ``root`` imports (at any depth in the module)."""
    found: dict[str, set[str]] = {}
    for path in root.rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(REPO))] = names
    return found


def test_the_shared_library_imports_no_service_and_no_tool() -> None:
    modules = imported_packages(REPO / "shared" / "src" / "feedback_shared")
    assert modules, "no modules found: the layout moved"
    offenders = {m: sorted(names & {*SERVICES, "feedback_tools"}) for m, names in modules.items()
                 if names & {*SERVICES, "feedback_tools"}}
    assert offenders == {}


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_imports_no_tool_and_no_other_service(service: str) -> None:
    modules = imported_packages(REPO / "services" / service / "src" / service)
    others = {*SERVICES, "feedback_tools"} - {service}
    offenders = {m: sorted(names & others) for m, names in modules.items() if names & others}
    assert offenders == {}
