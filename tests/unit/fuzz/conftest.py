"""Reports how many inputs each decoder was fed: a line per decoder, and build/fuzz/counts.json."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.unit.fuzz.fuzzing import FUZZ_EXAMPLES, TRIED


def pytest_terminal_summary(terminalreporter: Any, exitstatus: int, config: pytest.Config) -> None:
    if not TRIED:
        return
    total = sum(TRIED.values())
    terminalreporter.write_sep("-", f"fuzz: inputs tried per decoder (FUZZ_EXAMPLES={FUZZ_EXAMPLES} per test)")
    width = max(len(name) for name in TRIED)
    for name, count in sorted(TRIED.items()):
        terminalreporter.write_line(f"fuzz {name:<{width}} {count:>8}")
    terminalreporter.write_line(f"fuzz {'TOTAL':<{width}} {total:>8} inputs over {len(TRIED)} decoders")
    out = config.rootpath / "build" / "fuzz" / "counts.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"examples_per_test": FUZZ_EXAMPLES, "exit_status": int(exitstatus),
                               "decoders": dict(sorted(TRIED.items())), "total": total}, indent=2) + "\n")
    terminalreporter.write_line(f"fuzz counts written to {out.relative_to(config.rootpath)}")
