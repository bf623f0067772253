from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError
from threadpoolctl import threadpool_info

from feedback_shared.events import MAX_TEXT_CHARS
from sentiment.config import Settings
from sentiment.main import create_app

AUTH = {"Authorization": "Bearer test-key"}


def test_score_endpoint_returns_the_scored_shape() -> None:
    with TestClient(create_app(Settings(api_keys=["test-key"]), stream=False)) as client:
        resp = client.post("/v1/score", json={"text": "Посылка пришла разбитой, поддержка молчит. Ужасно!"},
                           headers=AUTH)
        assert resp.status_code == 200
        body = resp.json()
        assert body["language"] == "ru"
        assert body["sentiment"]["label"] == "negative"
        assert -1 <= body["sentiment"]["score"] < 0
        assert body["model_version"]
        bad = client.post("/v1/score", json={"text": ""}, headers=AUTH)
        assert bad.status_code == 422
        assert bad.json()["detail"][0]["loc"] == ["body", "text"]


def test_unwritable_input_is_still_a_422_naming_the_field() -> None:
    """A lone surrogate or NaN cannot be echoed back as JSON: FastAPI's own 422 handler raised (a 500)."""
    with TestClient(create_app(Settings(api_keys=["test-key"]), stream=False), raise_server_exceptions=False) as client:
        for body, field in ((b'{"text": "\\ud800"}', "text"), (b'{"text": "ok", "language": "\\udfff"}', "language"),
                            (b'{"text": NaN}', "text")):
            resp = client.post("/v1/score", content=body, headers={"Content-Type": "application/json", **AUTH})
            assert resp.status_code == 422, body
            assert resp.json()["detail"][0]["loc"] == ["body", field]


def _blas_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_the_service_runs_numpy_blas_on_the_configured_threads_and_gives_them_back() -> None:
    """OpenBLAS threads that spin after the heads' products take cores from the encoder sessions."""
    outside = _blas_threads()
    assert outside, "numpy links a BLAS that threadpoolctl sees"
    with TestClient(create_app(Settings(api_keys=["test-key"]), stream=False)):
        assert _blas_threads() == [1] * len(outside)
    assert _blas_threads() == outside
    with TestClient(create_app(Settings(api_keys=["test-key"], blas_threads=3), stream=False)):
        assert _blas_threads() == [3] * len(outside)
    assert _blas_threads() == outside


def test_blas_threads_is_bounded() -> None:
    with pytest.raises(ValidationError, match="blas_threads"):
        Settings(api_keys=["test-key"], blas_threads=0)


def test_the_largest_valid_score_request_is_taken_and_a_longer_text_is_a_422_naming_it() -> None:
    """An encoder that escapes non-ASCII (Python's json, schemathesis) writes a character outside the BMP
    as 12 bytes: a text of the most characters allowed is then 1.2 MB. The body limit must take it, and a
    text one character too long must be refused by the schema (422 naming the field), not by the byte
    limit (413), as schemathesis' negative_data_rejection found on 100,008 such characters."""
    largest = json.dumps({"text": "\U000302de" * MAX_TEXT_CHARS, "language": "\U000302de" * 16})
    assert len(largest) > 1_200_000
    with TestClient(create_app(Settings(api_keys=["test-key"]), stream=False)) as client:
        headers = {"Content-Type": "application/json", **AUTH}
        taken = client.post("/v1/score", content=largest, headers=headers)
        assert taken.status_code == 200, taken.text[:200]
        too_long = json.dumps({"text": "\U000302de" * (MAX_TEXT_CHARS + 8)})
        refused = client.post("/v1/score", content=too_long, headers=headers)
        assert refused.status_code == 422, refused.text[:200]
        assert refused.json()["detail"][0]["loc"] == ["body", "text"]
