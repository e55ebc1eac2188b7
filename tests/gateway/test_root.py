"""The welcome, /help, the load-balancing test, and errors of routes that do not exist."""

from __future__ import annotations

from gateway.routes import ROUTES
from gateway.routes.root import WELCOME


async def test_welcome_is_the_original_text_in_the_envelope(gateway):
    response = await gateway.get("/")
    assert response.status == 200
    assert await response.json() == {
        "http_status": {"code": 200, "description": WELCOME, "name": "OK"}
    }
    assert "Greetings from MLBuffet" in WELCOME


async def test_help_lists_every_route_on_its_own_line(gateway):
    response = await gateway.get("/help")
    text = await response.text()
    assert response.status == 200
    lines = text.splitlines()
    for route in ROUTES:
        assert any(line.startswith(route.method) and f" {route.path} " in line for line in lines), (
            route
        )


async def test_api_test_answers_ok(gateway):
    response = await gateway.get("/api/test")
    assert response.status == 200
    assert (await response.json())["http_status"]["name"] == "OK"


async def test_sendtomodelhost_shows_that_both_modelhosts_answer(gateway, start_modelhost):
    first = await start_modelhost()
    second = await start_modelhost()
    items = [f"item-{i}" for i in range(60)]
    response = await gateway.post("/api/test/sendtomodelhost", json={"data": items})
    body = await response.json()
    assert response.status == 200, body
    assert [r["data"] for r in body["results"]] == items
    assert set(body["nodes"]) == {first.node_id, second.node_id}
    assert sum(body["nodes"].values()) == len(items)


async def test_sendtomodelhost_without_modelhosts_is_503(make_gateway):
    gateway = await make_gateway(no_responders_wait_s=0.1)
    response = await gateway.post("/api/test/sendtomodelhost", json={"data": ["ONE"]})
    body = await response.json()
    assert response.status == 503
    assert "modelhost" in body["http_status"]["description"]


async def test_sendtomodelhost_rejects_bad_bodies(gateway, serving):
    cases = [
        (b"", 422, "No json data"),
        (b"{not json", 400, "not valid JSON"),
        (b'{"other": 1}', 422, "No test data provided"),
        (b'{"data": "ONE"}', 422, "not a list"),
        (b"[1, 2]", 422, "No test data provided"),
    ]
    for raw, status, words in cases:
        response = await gateway.post(
            "/api/test/sendtomodelhost", data=raw, headers={"Content-Type": "application/json"}
        )
        body = await response.json()
        assert response.status == status, (raw, body)
        assert words.lower() in body["http_status"]["description"].lower(), (raw, body)


async def test_sendtomodelhost_limits_the_number_of_items(make_gateway, serving):
    gateway = await make_gateway(max_echo_items=3)
    response = await gateway.post("/api/test/sendtomodelhost", json={"data": [1, 2, 3, 4]})
    assert response.status == 422


async def test_unknown_route_is_404_in_the_envelope(gateway):
    response = await gateway.get("/api/v1/nothing-here")
    body = await response.json()
    assert response.status == 404
    assert body["http_status"]["code"] == 404
    assert body["http_status"]["name"] == "Not Found"


async def test_wrong_method_is_405_in_the_envelope(gateway):
    response = await gateway.patch("/api/v1/models")
    body = await response.json()
    assert response.status == 405
    assert body["http_status"]["name"] == "Method Not Allowed"
