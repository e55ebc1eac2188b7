"""The console in a real browser (Debian's headless chromium), used as a person would use it.

Real nats-server, modelhost (onnxruntime on the seed iris model), gateway and
metrics actor; the page is driven over DevTools. Screenshots go to artifacts/
(ignored by git); each test prints where. Any console error, uncaught
exception or failed load on the page fails the test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from mlbuffet.apikeys import Scope
from tests.conftest import eventually
from tests.observe.browser import Page, open_page
from tests.observe.conftest import INTERVAL_S
from tests.trainer.example_job import REQUIREMENTS, TRAIN_SCRIPT

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
PAGE_TIMEOUT_S = 60.0
"""Generous: the machine running the tests may be shared and loaded (chromium, a trainer)."""
SAMPLE_S = 0.5
IRIS_ROW = [2, 5, 1, 4]
"""The README's sample row."""


async def _contains(page: Page, selector: str, part: str) -> bool:
    return part in (await page.text(selector) or "")


async def _predict(gateway: Any, row: list[float]) -> dict[str, Any]:
    response = await gateway.post("/api/v1/models/iris/prediction", json={"values": row})
    assert response.status == 200, await response.text()
    return dict(await response.json())


async def _step(what: str, check: Any, page: Page, worker_id: str) -> None:
    """`eventually`, saying which step did not happen, with a screenshot of the page then."""
    try:
        await eventually(check, PAGE_TIMEOUT_S)
    except BaseException:
        shot = _screenshot_path("failed-step", worker_id)
        await page.screenshot(shot, full_page=True)
        pytest.fail(
            f"{what}: not within {PAGE_TIMEOUT_S}s (page: {shot}; problems: {page.problems})"
        )


def _screenshot_path(name: str, worker_id: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / f"{name}-{worker_id}.png"


@pytest.fixture
async def mesh(upload, seed_iris, start_modelhost, make_gateway, start_metrics):
    """A mesh serving iris with everything the console reads, heartbeats and samples quick."""
    await upload("iris", seed_iris)
    host = await start_modelhost(heartbeat_interval_s=INTERVAL_S)
    gateway = await make_gateway(heartbeat_interval_s=INTERVAL_S)
    await start_metrics(sample_interval_s=SAMPLE_S)
    return host, gateway


@pytest.mark.processes
async def test_the_console_charts_history_try_it_upload_and_delete(
    mesh, seed_iris, tmp_path, worker_id
):
    host, gateway = mesh
    expected = (await _predict(gateway, IRIS_ROW))["values"]

    async with open_page(str(gateway.make_url("/dashboard")), tmp_path / "chromium") as page:
        # At once: the events from before the page opened (the host loaded iris).
        loaded = f"model iris:1 loaded on {host.node_id}"
        await eventually(lambda: _contains(page, "#events", loaded), PAGE_TIMEOUT_S)

        # Charts draw the predictions made while the page is open.
        async def charted() -> bool:
            for _ in range(5):
                await _predict(gateway, IRIS_ROW)
            points = await page.evaluate("window.mlbuffetConsole.chartPoints()") or {}
            return all(
                points.get(c, 0) > 0 for c in ("chart-requests", "chart-latency", "chart-cpu")
            )

        await eventually(charted, PAGE_TIMEOUT_S)
        assert await page.evaluate("document.querySelectorAll('#chart-requests canvas').length")
        legend = await page.text("#chart-requests .u-legend") or ""
        assert "iris:1" in legend

        # Try it: the form built from iris's signature answers the README row's class.
        await eventually(lambda: _contains(page, "#model-iris", "default v1"), PAGE_TIMEOUT_S)
        await page.evaluate(
            "(() => { const d = document.querySelector('#model-iris details.tryit'); d.open = true;"
            f" d.querySelector('textarea').value = {json.dumps(json.dumps({'values': IRIS_ROW}))};"
            " d.querySelector('textarea').dispatchEvent(new Event('input')); })()"
        )
        assert "curl -X POST" in (await page.text("#model-iris .tryit pre.curl") or "")
        await page.click("#model-iris .tryit button[type=submit]")

        async def answered() -> bool:
            return bool(
                await page.evaluate(
                    "document.querySelector('#model-iris .tryit pre.answer').dataset.values || ''"
                )
            )

        await eventually(answered, PAGE_TIMEOUT_S)
        got = await page.evaluate(
            "JSON.parse(document.querySelector('#model-iris .tryit pre.answer').dataset.values)"
        )
        assert got == expected == [1]
        answer = await page.text("#model-iris .tryit pre.answer") or ""
        assert f"version 1 on {host.node_id}" in answer and " ms" in answer

        await page.evaluate("window.scrollTo(0, 0)")
        await page.screenshot(desktop := _screenshot_path("console", worker_id))
        await page.screenshot(_screenshot_path("console-full", worker_id), full_page=True)

        # Upload through the page: a new version, which becomes the default.
        await page.choose_files("#model-iris input[type=file]", seed_iris)

        async def version_two() -> bool:
            details = await (await gateway.get("/api/v1/models/iris")).json()
            return details["versions"] == [1, 2] and details["default_version"] == 2

        await eventually(version_two, PAGE_TIMEOUT_S)
        await eventually(lambda: _contains(page, "#model-iris", "default v2"), PAGE_TIMEOUT_S)
        await eventually(
            lambda: _contains(page, "#events", "model iris:2 uploaded"), PAGE_TIMEOUT_S
        )

        # Delete v1: the first click asks, the second deletes.
        delete = "#model-iris button.danger"
        assert (await page.text(delete)) == "delete v1"
        await page.click(delete)
        assert (await page.text(delete)) == "really delete iris:1?"
        details = await (await gateway.get("/api/v1/models/iris")).json()
        assert details["versions"] == [1, 2]  # not yet
        await page.click(delete)

        async def only_two() -> bool:
            details = await (await gateway.get("/api/v1/models/iris")).json()
            return details["versions"] == [2]

        await eventually(only_two, PAGE_TIMEOUT_S)

        # Dark, as the system asks: the page's colours follow.
        await page.call(
            "Emulation.setEmulatedMedia",
            features=[{"name": "prefers-color-scheme", "value": "dark"}],
        )
        background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == "rgb(20, 23, 29)", background
        await page.evaluate("window.scrollTo(0, 0)")
        await page.screenshot(_screenshot_path("console-dark", worker_id))

        # Phone width: the same page, one column.
        await page.resize(390, 844, mobile=True)
        await page.evaluate("window.scrollTo(0, 0)")
        await page.screenshot(phone := _screenshot_path("console-phone", worker_id))
        await page.evaluate("1")  # a last call, so late console messages are read
        assert page.problems == []
    for shot in (desktop, phone):
        assert shot.stat().st_size > 5000
        print(f"\nconsole screenshot: {shot}")


async def _try_listing_models(page: Page) -> tuple[str, str]:
    """On /docs: open GET /api/v1/models, press Execute; (status, body) of the answer."""

    async def rendered() -> bool:
        return bool(await page.evaluate("document.querySelectorAll('.opblock').length"))

    await eventually(rendered, PAGE_TIMEOUT_S)
    # The operation as a person finds it: the GET block whose path is /api/v1/models.
    found = await page.evaluate(
        "(() => { for (const b of document.querySelectorAll('.opblock-get')) {"
        " const path = b.querySelector('.opblock-summary-path');"
        " if (path && path.textContent.trim() === '/api/v1/models') {"
        " b.dataset.test = 'list-models'; return true; } } return false; })()"
    )
    assert found, "no GET /api/v1/models in the rendered document"
    operation = "[data-test=list-models]"

    async def execute_shown() -> bool:
        # Deep links reopen the operation a reload comes back to: a click then would close it.
        if await page.evaluate(f"!!document.querySelector('{operation} .execute')"):
            return True
        if not await page.evaluate(
            f"document.querySelector('{operation}').classList.contains('is-open')"
        ):
            await page.click(f"{operation} .opblock-summary-control")
        return False

    await eventually(execute_shown, PAGE_TIMEOUT_S)
    await page.click(f"{operation} .execute")
    answer = f"{operation} .live-responses-table tbody"

    async def answered() -> bool:
        return bool((await page.text(f"{answer} .response-col_status") or "").strip())

    await eventually(answered, PAGE_TIMEOUT_S)
    status = (await page.text(f"{answer} .response-col_status") or "").strip()
    return status, await page.text(f"{answer} .response-col_description") or ""


@pytest.mark.processes
async def test_api_docs_render_and_try_it_out_answers_200(mesh, tmp_path, worker_id):
    _, gateway = mesh
    async with open_page(str(gateway.make_url("/docs")), tmp_path / "chromium") as page:
        status, body = await _try_listing_models(page)
        assert status == "200" and "iris" in body
        await page.screenshot(shot := _screenshot_path("docs", worker_id))
        await page.evaluate("window.scrollTo(0, 0)")
        await page.screenshot(_screenshot_path("docs-top", worker_id))
        await page.evaluate("1")
        assert page.problems == []
    print(f"\ndocs screenshot: {shot}")


@pytest.mark.processes
async def test_api_docs_try_it_out_sends_the_consoles_api_key(
    upload, seed_iris, make_gateway, key_ring, scoped_keys, tmp_path
):
    await upload("iris", seed_iris)
    gateway = await make_gateway(api_keys=key_ring)
    async with open_page(str(gateway.make_url("/docs")), tmp_path / "chromium") as page:
        status, _ = await _try_listing_models(page)
        assert status == "401"  # no key given yet: refused, and the page shows it
        # The key given to the console (same tab) is the one "Try it out" sends.
        key = json.dumps(scoped_keys[Scope.READ])
        await page.evaluate(f"sessionStorage.setItem('mlbuffet-api-key', {key})")
        await page.call("Page.reload")
        await eventually(lambda: page.evaluate("!document.querySelector('[data-test]')"))
        status, body = await _try_listing_models(page)
        assert status == "200" and "iris" in body


async def _is(value, expected: str) -> bool:
    return (await value) == expected


@pytest.mark.processes
async def test_a_training_job_submitted_from_the_page_succeeds_and_its_log_is_followed(
    mesh, start_trainer, iris_csv, tmp_path, worker_id
):
    _, gateway = mesh
    await start_trainer(backend="process")
    script, requirements = tmp_path / "train.py", tmp_path / "requirements.txt"
    script.write_text(TRAIN_SCRIPT)
    requirements.write_text(REQUIREMENTS)
    async with open_page(
        str(gateway.make_url("/dashboard#training")), tmp_path / "chromium"
    ) as page:
        # Ready: the page's scripts hold the form (before that, a submit would do nothing).
        await eventually(lambda: page.evaluate("window.mlbuffetConsole?.ready === true"))
        await page.evaluate("document.querySelector('#train-form [name=model]').value = 'trained'")
        for field, path in (
            ("script", script),
            ("requirements", requirements),
            ("dataset", iris_csv),
        ):
            await page.choose_files(f"#train-form [name={field}]", path)
        await page.click("#train-form button[type=submit]")

        async def job_id() -> str:
            return str(
                await page.evaluate(
                    "document.querySelector('#train-form .result').dataset.job || ''"
                )
            )

        await _step("the page shows the job it submitted", job_id, page, worker_id)
        job = await job_id()
        row = f"#jobs tr[data-job='{job}']"
        # The training takes a while (a venv from the cache, then scikit-learn): up to 3 minutes.
        await eventually(lambda: _contains(page, row, "succeeded"), 180)
        details = await (await gateway.get(f"/api/v1/train/{job}")).json()
        assert details["state"] == "succeeded" and details["version"] == 1
        # The log the page followed is the job's log, to its end.
        await _step(
            "the followed log ended",
            lambda: _contains(page, "#job-log .state", "ended"),
            page,
            worker_id,
        )
        shown = await page.text("#job-log .log") or ""
        assert "training on 150 rows" in shown and "accuracy" in shown
        await eventually(
            lambda: _contains(page, "#events", f"training {job} succeeded"), PAGE_TIMEOUT_S
        )
        await page.evaluate("document.getElementById('training').scrollIntoView()")
        await page.screenshot(shot := _screenshot_path("console-training", worker_id))
        await page.evaluate("1")
        assert page.problems == []
    print(f"\ntraining screenshot: {shot}")


@pytest.mark.processes
async def test_with_api_keys_the_page_asks_once_and_says_which_scope_is_missing(
    upload,
    seed_iris,
    start_modelhost,
    make_gateway,
    start_metrics,
    key_ring,
    scoped_keys,
    tmp_path,
    worker_id,
):
    await upload("iris", seed_iris)
    await start_modelhost(heartbeat_interval_s=INTERVAL_S)
    gateway = await make_gateway(heartbeat_interval_s=INTERVAL_S, api_keys=key_ring)
    await start_metrics(sample_interval_s=SAMPLE_S)
    async with open_page(str(gateway.make_url("/dashboard")), tmp_path / "chromium") as page:
        await eventually(
            lambda: page.evaluate("!document.getElementById('auth').hidden"), PAGE_TIMEOUT_S
        )
        key = json.dumps(scoped_keys[Scope.READ])
        await page.evaluate(f"document.getElementById('api-key').value = {key}")
        await page.click("#auth button[type=submit]")
        # With a read key: the cluster, charts and models show; the form is gone.
        await eventually(lambda: _contains(page, "#models tbody", "iris"), PAGE_TIMEOUT_S)
        await eventually(lambda: _contains(page, "#model-iris", "default v1"), PAGE_TIMEOUT_S)
        assert await page.evaluate("document.getElementById('auth').hidden")
        # A change needs the write scope, and the page says so.
        await page.click("#model-iris button.danger")
        await page.click("#model-iris button.danger")
        await eventually(
            lambda: _contains(page, "#model-iris .result", "lacks the write scope"), PAGE_TIMEOUT_S
        )
        details = await (
            await gateway.get(
                "/api/v1/models/iris",
                headers={"Authorization": f"Bearer {scoped_keys[Scope.READ]}"},
            )
        ).json()
        assert details["versions"] == [1]
        # Training needs the train scope: the jobs table says so instead of listing jobs.
        await eventually(lambda: _contains(page, "#jobs", "train scope"), PAGE_TIMEOUT_S)
        await page.screenshot(shot := _screenshot_path("console-keys", worker_id))
        await page.evaluate("1")
        # The browser logs the refused requests made before the key was given (401) and the
        # refused changes (403); nothing else may go wrong.
        assert [p for p in page.problems if " 401 " not in p and " 403 " not in p] == []
    print(f"\nkeys screenshot: {shot}")


@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("uplot/uPlot.iife.min.js", "text/javascript"),
        ("uplot/uPlot.min.css", "text/css"),
        ("uplot/LICENSE", "text/plain"),
        ("swagger-ui/swagger-ui-bundle.js", "text/javascript"),
        ("swagger-ui/swagger-ui.css", "text/css"),
        ("swagger-ui/LICENSE", "text/plain"),
    ],
)
async def test_vendored_files_are_served_with_their_type_and_the_page_csp(
    gateway, path, content_type
):
    response = await gateway.get(f"/dashboard/vendor/{path}")
    assert response.status == 200
    assert response.content_type == content_type
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    assert len(await response.read()) > 1000


@pytest.mark.parametrize("path", ["nope/x.js", "uplot/..%2F..%2Fapp.py", "uplot/README.md"])
async def test_files_not_vendored_are_404(gateway, path):
    response = await gateway.get(f"/dashboard/vendor/{path}")
    assert response.status == 404
