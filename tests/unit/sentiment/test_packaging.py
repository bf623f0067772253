"""The runtime package stays free of the offline training code: serving never needs scikit-learn, VADER or
the labelled data."""

from __future__ import annotations

import ast
from pathlib import Path

SOURCES = Path(__file__).resolve().parents[3] / "services" / "sentiment" / "src"


def _imported_modules(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text("utf-8"))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return modules


def test_the_runtime_package_does_not_import_the_training_package() -> None:
    runtime_modules = sorted((SOURCES / "sentiment").glob("*.py"))
    assert len(runtime_modules) > 5  # the glob found the package
    for path in runtime_modules:
        offline = {m for m in _imported_modules(path)
                   if m.split(".")[0] in ("sentiment_training", "sklearn", "vaderSentiment")}
        assert not offline, (path.name, offline)


def test_the_training_code_and_data_live_in_the_training_package() -> None:
    assert not (SOURCES / "sentiment" / "train.py").exists()
    assert not (SOURCES / "sentiment" / "evaluate.py").exists()
    for name in ("train.py", "evaluate.py", "data/train.jsonl", "data/eval.jsonl"):
        assert (SOURCES / "sentiment_training" / name).is_file(), name
