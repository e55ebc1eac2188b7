"""`mlbuffet predict` over REST and NATS against a real mesh: values, images, .npy inputs."""

from __future__ import annotations

import numpy as np
import pytest

from mlbuffet.codecs.images import image_array
from tests.client.conftest import serving


@pytest.fixture
async def host(start_modelhost):
    return await start_modelhost()


async def test_json_values_give_the_seed_iris_answer(cli, transport, upload, host, seed_iris):
    await upload("iris", seed_iris)
    await serving(host, "iris")
    run = await cli("predict", "iris", "--values", "[2, 5, 1, 4]", *transport)
    assert run.code == 0, run.err
    lines = run.out.splitlines()
    assert lines[0] == f"iris:1 answered by {host.node_id}"
    assert lines[1] == "output_label: [1]"
    assert lines[2].startswith('output_probability: [{"0": ')

    as_json = await cli("predict", "iris:1", "--values", "[2, 5, 1, 4]", "--json", *transport)
    answer = as_json.json()
    assert (answer["model"], answer["version"], answer["node"]) == ("iris", 1, host.node_id)
    assert answer["outputs"]["output_label"] == [1]
    assert set(answer["outputs"]["output_probability"][0]) == {"0", "1", "2"}


async def test_named_values_and_npy_files_feed_a_model_with_two_inputs(
    cli, transport, upload, host, model_files, tmp_path
):
    await upload("pair", model_files.two_inputs)
    await serving(host, "pair")
    run = await cli(
        "predict", "pair", "--values", '{"a": [1, 2], "b": [3, 4]}', "--json", *transport
    )
    assert run.code == 0, run.err
    assert run.json()["outputs"] == {"sum": [[4.0, 6.0]], "product": [[3.0, 8.0]]}

    np.save(tmp_path / "a.npy", np.array([[1, 2], [3, 4]], dtype=np.float32))
    np.save(tmp_path / "b.npy", np.array([[10, 20], [30, 40]], dtype=np.float32))
    run = await cli(
        "predict",
        "pair",
        "--input",
        f"a={tmp_path / 'a.npy'}",
        "--input",
        f"b={tmp_path / 'b.npy'}",
        "--json",
        *transport,
    )
    assert run.code == 0, run.err
    assert run.json()["outputs"]["sum"] == [[11.0, 22.0], [33.0, 44.0]]


async def test_one_unnamed_npy_file_feeds_a_single_input_model_at_a_pinned_version(
    cli, transport, upload, host, model_files, tmp_path
):
    await upload("add", model_files.add_one)
    await upload("add", model_files.add_ten)
    await serving(host, "add", version=2)
    np.save(tmp_path / "x.npy", np.zeros((1, 4), dtype=np.float32))
    run = await cli("predict", "add:1", "--input", str(tmp_path / "x.npy"), "--json", *transport)
    assert run.code == 0, run.err
    assert run.json()["version"] == 1 and run.json()["outputs"]["y"] == [[1.0] * 4]


async def test_an_image_is_laid_out_as_the_gateway_does(
    cli, transport, upload, registry, host, model_files, seed_dog
):
    await upload("means", model_files.nchw)
    await serving(host, "means")
    run = await cli(
        "predict", "means", "--image", str(seed_dog), "--preprocess", "unit", "--json", *transport
    )
    assert run.code == 0, run.err
    spec = (await registry.get("means")).default.signature.inputs[0]
    expected = image_array(seed_dog.read_bytes(), spec, "unit").mean(axis=(2, 3))
    # onnxruntime and numpy sum 4096 float32 pixels in different orders.
    np.testing.assert_allclose(run.json()["outputs"]["means"], expected, rtol=1e-5)


async def test_values_that_do_not_fit_exit_4_and_an_unknown_model_3(
    cli, transport, upload, host, seed_iris
):
    await upload("iris", seed_iris)
    await serving(host, "iris")
    bad = await cli("predict", "iris", "--values", "[1, 2, 3]", *transport)
    assert bad.code == 4
    assert "error 422: input 'float_input': values have shape [1, 3]" in bad.err
    unknown = await cli("predict", "nosuch", "--values", "[1]", "--json", *transport)
    assert unknown.code == 3 and unknown.json()["error"]["code"] == 404


async def test_a_model_no_modelhost_serves_exits_5(cli, transport, upload, seed_iris):
    await upload("iris", seed_iris)
    run = await cli("predict", "iris", "--values", "[2, 5, 1, 4]", *transport)
    assert run.code == 5 and "error 503: " in run.err


async def test_bad_command_lines_exit_2(cli, tmp_path):
    offline = ["--url", "http://127.0.0.1:1"]
    assert (await cli("predict", "iris", *offline)).code == 2
    not_json = await cli("predict", "iris", "--values", "[1,", *offline)
    assert not_json.code == 2 and "--values is not valid JSON" in not_json.err
    both = await cli("predict", "iris", "--values", "[1]", "--image", "x.jpg", *offline)
    assert both.code == 2
    no_image = await cli("predict", "iris", "--image", str(tmp_path / "none.jpg"), *offline)
    assert no_image.code == 2 and "no such file" in no_image.err
    (tmp_path / "bad.npy").write_text("not numpy")
    no_npy = await cli("predict", "iris", "--input", str(tmp_path / "bad.npy"), *offline)
    assert no_npy.code == 2 and "not a readable .npy file" in no_npy.err


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ("[NaN, 1, 2, 3]", "send null for a missing value"),
        ("[Infinity, 1, 2, 3]", "send null for a missing value"),
        ("[-Infinity, 1, 2, 3]", "send null for a missing value"),
        ("[1e400, 1, 2, 3]", "beyond the range of a 64-bit float"),
        ("[" * 1100 + "]" * 1100, "nested more than 1024 deep"),
        ('["\\ud800"]', "surrogate"),
    ],
)
async def test_values_that_are_not_strict_json_exit_2_before_sending(cli, values, words):
    """The CLI reads --values with the gateway's parser: nothing is sent, over either transport."""
    for offline in (["--url", "http://127.0.0.1:1"], ["--nats", "nats://127.0.0.1:1"]):
        run = await cli("predict", "iris", "--values", values, *offline)
        assert run.code == 2, run.err
        assert "--values is not valid JSON" in run.err and words in run.err, run.err


async def test_null_values_reach_a_float_input_as_nan(cli, transport, upload, host, model_files):
    await upload("add", model_files.add_one)
    await serving(host, "add")
    run = await cli("predict", "add", "--values", "[null, 1, 2, 3]", "--json", *transport)
    assert run.code == 0, run.err
    assert run.json()["outputs"]["y"] == [[None, 2.0, 3.0, 4.0]]


async def test_the_installed_command_exits_with_the_status(tmp_path):
    """The console script, as a user runs it: the exit status reaches the shell."""
    import asyncio
    import sys

    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mlbuffet.cli.main", "predict", "iris", "--values", "[1]",
        "--url", "http://127.0.0.1:1",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 5, err
    assert out == b"" and b"error 503: cannot reach" in err
