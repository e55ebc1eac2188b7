"""GET /openapi.json, and schemathesis fuzzing the live gateway against it.

The gateway, a modelhost and NATS are real; schemathesis sends requests built from
the document (valid ones and, in negative mode, ones that break it) to the
gateway's 127.0.0.1 port and checks each answer: no 5xx, and
the status, content type and body as documented. Failures are collected, not
shrunk, so one run reports every distinct one.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode, checks
from schemathesis.core.failures import FailureGroup

from gateway.routes import ROUTES
from tests.gateway.conftest import MakeClient, upload_file
from tests.observe.conftest import StartMetrics, start_metrics  # noqa: F401 (shared fixture)

NOT_FUZZED = {
    "GET /api/v1/events": "a Server-Sent Events stream: it never ends",
    "POST /api/v1/train/{model}": "would start training jobs",
    "POST /api/v1/train/{model}/{output_file}": "would start training jobs",
}
"""Operations in the document that the fuzz run leaves out, and why (docs/rest-api.md says so too)."""

AIMED = {"ref": ("iris", "iris:1", "iris:default"), "model": ("iris",), "version": ("1",)}
"""Path parameters that some cases get pointed at the one real model, so fuzzed bodies
reach the model's code paths (a random name is a 404 before the body is read)."""
NOT_AIMED = ("DELETE ", "PUT /api/v1/models/{ref}/settings", "POST /v2/repository/")
"""Operations left on random names: they would delete, reconfigure or unload the model."""

FRAMING_HEADERS = frozenset(
    {"content-length", "transfer-encoding", "host", "connection", "expect", "te", "upgrade"}
)
"""HTTP's own headers, dropped from generated cases: a bad value (`Content-Length: ~y`) is
refused by aiohttp's parser with a plain-text 400 before any route runs, so it says nothing
about the API or its document."""

EXAMPLES_PER_OPERATION = 50
MIN_CASES = 1_000
BUDGET_S = 150.0
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


@pytest.mark.parametrize(
    "name", ["dashboard.html", "dashboard.js", "dashboard.css", "charts.js", "docs.html"]
)
async def test_every_dashboard_file_has_a_documented_content_type(gateway: Any, name: str):
    """The fuzzer finds these only when it happens to draw the name; this asks each one."""
    document = await (await gateway.get("/openapi.json")).json()
    documented = document["paths"]["/dashboard/{file}"]["get"]["responses"]["200"]["content"]
    response = await gateway.get(f"/dashboard/{name}")
    assert response.status == 200
    assert response.content_type in documented, (response.content_type, sorted(documented))


async def test_the_document_has_every_route_with_its_scope(gateway: Any):
    response = await gateway.get("/openapi.json")
    assert response.status == 200
    document = await response.json()
    assert document["openapi"].startswith("3.")
    for route in ROUTES:
        operation = document["paths"][route.path][route.method.lower()]
        assert operation["summary"] == route.summary
        assert operation["x-scope"] == route.scope.value  # type: ignore[union-attr]
        if route.scope.value == "public":  # type: ignore[union-attr]
            assert operation["security"] == []
        else:
            assert operation["security"] == [{"bearer": [route.scope.value]}]  # type: ignore[union-attr]
    documented = sum(len(methods) for methods in document["paths"].values())
    assert documented == len(ROUTES)


class Fuzzer:
    """Runs each operation's cases against the live gateway; keeps counts and the first
    of each distinct failure (operation and kind)."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.deadline = time.monotonic() + BUDGET_S
        self.cases: Counter[str] = Counter()
        self.modes: Counter[str] = Counter()
        self.statuses: Counter[str] = Counter()
        self.failures: dict[str, str] = {}

    def check(self, label: str, case: Any) -> None:
        if time.monotonic() > self.deadline:
            return
        if case.headers:
            for name in [n for n in case.headers if n.lower() in FRAMING_HEADERS]:
                del case.headers[name]
        response = case.call(base_url=self.base_url, session=self.session, timeout=30)
        self.cases[label] += 1
        self.statuses[f"{label} {response.status_code}"] += 1
        self.modes[case.meta.generation.mode.value] += 1
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as group:
            for failure in group.exceptions:
                key = f"{label}: {failure.title}"
                self.failures.setdefault(key, f"{key}\n{failure.message}\n{case.as_curl_command()}")

    def run(self, operation: Any) -> None:
        label = operation.label
        strategy = st.one_of(operation.as_strategy(mode) for mode in GenerationMode)
        if not label.startswith(NOT_AIMED) and any(f"{{{n}}}" in operation.path for n in AIMED):
            strategy = st.tuples(strategy, st.booleans(), st.integers(0, 2)).map(aim)
        settings(
            max_examples=EXAMPLES_PER_OPERATION,
            phases=[Phase.explicit, Phase.generate],
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )(given(case=strategy)(lambda case: self.check(label, case)))()


def aim(drawn: tuple[Any, bool, int]) -> Any:
    case, aimed, pick = drawn
    if aimed and isinstance(case.path_parameters, dict):
        for name, choices in AIMED.items():
            if name in case.path_parameters:
                case.path_parameters[name] = choices[pick % len(choices)]
    return case


def fuzz(document: dict[str, Any], base_url: str) -> Fuzzer:
    fuzzer = Fuzzer(base_url)
    for result in schemathesis.openapi.from_dict(document).get_all_operations():
        operation = result.ok()
        if operation.label not in NOT_FUZZED:
            fuzzer.run(operation)
    fuzzer.session.close()
    return fuzzer


async def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(
    make_gateway: MakeClient,
    serving: Any,
    start_metrics: StartMetrics,  # noqa: F811
    seed_iris: Path,
):
    await start_metrics()  # GET /api/v1/cluster answers 503 without one
    gateway = await make_gateway()
    await upload_file(gateway, "iris", seed_iris, "the seed's iris")
    document = await (await gateway.get("/openapi.json")).json()
    base_url = str(gateway.make_url("")).rstrip("/")
    started = time.monotonic()
    fuzzer = await asyncio.to_thread(fuzz, document, base_url)
    elapsed = time.monotonic() - started
    cases = fuzzer.cases
    total = sum(cases.values())
    print(
        f"schemathesis: {total} cases ({dict(fuzzer.modes)}) over {len(cases)} operations"
        f" in {elapsed:.0f} s"
    )
    assert not fuzzer.failures, "\n\n".join(fuzzer.failures.values())
    assert total >= MIN_CASES, (total, elapsed, cases)
    assert fuzzer.statuses["GET /api/v1/models/{ref}/download 200"] > 0, "no case reached iris"
    fuzzed = {f"{r.method} {r.path}" for r in ROUTES} - set(NOT_FUZZED)
    assert set(cases) == fuzzed, fuzzed - set(cases)
