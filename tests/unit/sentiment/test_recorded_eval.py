"""The evaluation as a guard: the packaged model, scored on the held-out set, may not fall more than two
points below the figures ``make eval`` recorded (``python -m sentiment_training.evaluate --record``)."""

from __future__ import annotations

import hashlib
import json

import pytest

from sentiment.model import MODEL_VERSION
from sentiment_training.evaluate import ALLOWED_DROP, RECORDED_FILE, default_data_file, evaluate


@pytest.fixture(scope="module")
def recorded() -> dict[str, object]:
    figures: dict[str, object] = json.loads(RECORDED_FILE.read_text("utf-8"))
    return figures


def test_the_recorded_figures_are_for_this_evaluation_set_and_model(recorded: dict[str, object]) -> None:
    """A changed eval.jsonl or a retrained model needs ``make eval`` re-run with --record, and a look."""
    assert recorded["eval_sha256"] == hashlib.sha256(default_data_file("eval.jsonl").read_bytes()).hexdigest()
    assert recorded["model_version"] == MODEL_VERSION
    assert recorded["allowed_drop"] == ALLOWED_DROP == 0.02


@pytest.mark.timeout(120)
def test_accuracy_and_needs_micro_f1_stay_within_two_points_of_the_recorded(recorded: dict[str, object]) -> None:
    results = evaluate(default_data_file("eval.jsonl"))
    accuracy, needs_micro_f1 = results["accuracy"]["overall"], results["needs"]["micro_f1"]
    assert isinstance(recorded["overall_accuracy"], float) and isinstance(recorded["needs_micro_f1"], float)
    assert accuracy >= recorded["overall_accuracy"] - ALLOWED_DROP, (accuracy, recorded["overall_accuracy"])
    assert needs_micro_f1 >= recorded["needs_micro_f1"] - ALLOWED_DROP, (needs_micro_f1, recorded["needs_micro_f1"])
