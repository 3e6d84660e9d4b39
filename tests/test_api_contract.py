"""The HTTP contract: JSON shapes, validation errors as 4xx with messages, bearer auth on and off."""

import pytest
from fastapi.testclient import TestClient

from vibeset.retrieval.synthetic import synthetic_index
from vibeset.serve import create_app


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("index")
    synthetic_index(items=400, users=30, attributes=6, seed=1).save(root)
    return root


@pytest.fixture(scope="module")
def client(root):
    with TestClient(create_app(root, token="")) as client:
        yield client


def test_recommend_get_explicit_shape(client):
    answer = client.get("/recommend", params={"user": "u3", "intent": "a5,-a4", "k": 7}).json()
    assert set(answer) >= {"user", "intent", "items"}
    assert answer["user"] == "u3"
    assert answer["intent"] == {"matched": ["a5"], "excluded": ["a4"], "ignored": [], "source": "explicit"}
    assert answer["ranker"] == "als" and answer["blend"] == 0.0
    assert 0 < len(answer["items"]) <= 7
    scores = [item["score"] for item in answer["items"]]
    assert scores == sorted(scores, reverse=True)
    for item in answer["items"]:
        assert set(item) == {"video_id", "title", "score", "attributes", "lineage"}
        assert "a5" in item["attributes"] and "a4" not in item["attributes"]


def test_recommend_inferred_and_post(client):
    inferred = client.get("/recommend", params={"user": "u0"}).json()
    assert inferred["intent"]["source"] == "inferred"
    posted = client.post("/recommend", json={"user": "u0", "attributes": ["a5", "a4"], "excluded": ["a0"], "k": 3})
    assert posted.status_code == 200
    body = posted.json()
    assert body["intent"] == {"matched": ["a5", "a4"], "excluded": ["a0"], "ignored": [], "source": "explicit"}
    assert all({"a5", "a4"} <= set(item["attributes"]) for item in body["items"])


def test_video_lineage_and_attributes(client):
    video = client.get("/videos/v10").json()
    assert video["video_id"] == "v10" and video["title"] == "Video 10"
    assert len(video["attributes"]) == 6
    first = video["attributes"][0]
    assert set(first) == {"name", "score", "label", "lineage"}
    assert set(first["lineage"]) == {"run_id", "prompt_version", "model", "source", "taxonomy_version"}
    assert first["lineage"]["run_id"] == "run-1"
    listed = client.get("/attributes").json()["attributes"]
    assert [a["name"] for a in listed] == [f"a{i}" for i in range(6)]
    assert client.get("/healthz").json()["status"] == "ok"
    documented = client.get("/openapi.json").json()["paths"]["/recommend"]["get"]["parameters"]
    assert [p["name"] for p in documented] == ["user", "intent", "k", "blend", "ranker", "fallback"]


@pytest.mark.parametrize(
    "method, path, kwargs, status, message",
    [
        ("get", "/recommend", {"params": {"user": "nobody"}}, 404, "unknown user 'nobody'"),
        ("get", "/recommend", {"params": {"user": "u1", "intent": "a1,-zz"}}, 422, "unknown vibe 'zz'; closest: "),
        ("post", "/recommend", {"json": {"user": "u1", "attributes": ["zz"]}}, 422, "unknown vibe 'zz'"),
        ("get", "/recommend", {"params": {"user": "u1", "k": 0}}, 422, "k: "),
        ("get", "/recommend", {"params": {"user": "u1", "k": 5000}}, 422, "k: "),
        ("get", "/recommend", {"params": {"user": "u1", "k": "ten"}}, 422, "k: "),
        ("get", "/recommend", {"params": {}}, 422, "user: "),
        ("get", "/recommend", {"params": {"user": "u1", "intent": "x" * 201}}, 422, "intent: String should have at most 200"),
        ("get", "/recommend", {"params": {"user": "u" * 201}}, 422, "user: String should have at most 200"),
        ("get", "/recommend", {"params": {"user": "u1", "intent": "a1", "ranker": "bert"}}, 400, "unknown ranker 'bert'"),
        ("post", "/recommend", {"content": b'{"user": "u1",', "headers": {"content-type": "application/json"}}, 400, "malformed JSON"),
        ("post", "/recommend", {"json": {"user": "u1", "attributes": ["a1"], "excluded": ["a1"]}}, 422, "contradictory intent"),
        ("post", "/recommend", {"json": {"user": "u1", "attributes": ["a1"] * 65}}, 422, "attributes: List should have at most 64"),
        ("post", "/recommend", {"json": {"user": "u1", "colour": "red"}}, 422, "colour"),
        ("post", "/recommend", {"content": b"{" + b" " * 20000 + b"}", "headers": {"content-type": "application/json"}},
         413, "request body too large"),
        ("get", "/videos/nope", {}, 404, "unknown video 'nope'"),
    ],
)
def test_invalid_input_is_a_clear_4xx(client, method, path, kwargs, status, message):
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == status
    assert message in response.json()["error"]


def test_a_streamed_body_over_the_limit_is_a_413_and_a_get_without_a_body_passes(client):
    chunks = (b" " * 4096 for _ in range(8))  # no Content-Length: Transfer-Encoding chunked, counted as it streams
    response = client.post("/recommend", content=chunks, headers={"content-type": "application/json"})
    assert response.status_code == 413 and "request body too large" in response.json()["error"]
    assert client.get("/recommend", params={"user": "u1", "intent": "a1"}).status_code == 200


def test_unknown_vibe_names_the_closest(client):
    response = client.get("/recommend", params={"user": "u1", "intent": "a1,-a44"})
    assert response.status_code == 422 and response.json()["closest"][0] == "a4"


def test_docs_work_offline(client):
    page = client.get("/docs")
    assert page.status_code == 200 and "cdn" not in page.text.lower()
    assert '/static-offline-docs/swagger-ui-bundle.js' in page.text
    script = client.get("/static-offline-docs/swagger-ui-bundle.js")
    assert script.status_code == 200 and len(script.content) > 100_000 and "SwaggerUIBundle" in script.text[:2000]
    assert client.get("/static-offline-docs/swagger-ui.css").status_code == 200


def test_free_text_intent_returns_its_mapping(client):
    answer = client.get("/recommend", params={"user": "u1", "intent": "synthetic attribute number 3 but not number 2"}).json()
    intent = answer["intent"]
    assert intent["source"] == "query"
    assert [clause["negated"] for clause in intent["mapping"]] == [False, True]
    assert all("candidates" in clause for clause in intent["mapping"])


def test_auth_on(root, monkeypatch):
    monkeypatch.setenv("VIBESET_API_TOKEN", "s3cret")
    with TestClient(create_app(root)) as client:
        assert client.get("/recommend", params={"user": "u1"}).status_code == 401
        wrong = client.get("/recommend", params={"user": "u1"}, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401 and "bearer token" in wrong.json()["error"]
        assert client.get("/recommend", params={"user": "u1"}, headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert client.get("/healthz").status_code == 200
        assert client.get("/docs").status_code == 200 and client.get("/static-offline-docs/swagger-ui.css").status_code == 200


def test_auth_off(root, monkeypatch):
    monkeypatch.delenv("VIBESET_API_TOKEN", raising=False)
    with TestClient(create_app(root)) as client:
        assert client.get("/recommend", params={"user": "u1"}).status_code == 200
