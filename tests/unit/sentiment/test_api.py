from __future__ import annotations

from fastapi.testclient import TestClient

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
