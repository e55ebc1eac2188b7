"""Model management through the client, checked in the registry the gateway reads."""

from __future__ import annotations

import pytest

from mlbuffet.protocol.errors import (
    ModelNotFoundError,
    UnprocessableError,
    UnsupportedMediaTypeError,
)


async def test_upload_list_show_default_description_and_delete_round_trip(
    client, registry, model_files
):
    first = await client.upload("add", model_files.add_one, description="adds one")
    assert (first.model, first.version, first.default_version) == ("add", 1, 1)
    assert first.size == model_files.add_one.stat().st_size
    second = await client.upload("add", model_files.add_two.read_bytes(), make_default=False)
    assert (second.version, second.default_version) == (2, 1)

    stored = await registry.get("add")
    assert sorted(stored.versions) == [1, 2] and stored.default_version == 1
    assert stored.description == "adds one"
    assert stored.versions[2].filename == "add.onnx"
    assert [r.name for r in await client.models()] == ["add"]
    shown = await client.model("add")
    assert [s.name for s in shown.version(2).signature.inputs] == ["x"]

    await client.set_default("add", 2)
    assert (await registry.get("add")).default_version == 2
    await client.set_description("add", "adds a constant")
    assert (await registry.get("add")).description == "adds a constant"

    assert await client.download("add", 1) == model_files.add_one.read_bytes()
    assert await client.download("add") == model_files.add_two.read_bytes()

    deleted = await client.delete("add")
    assert deleted.deleted_versions == (2,) and deleted.default_version == 1
    assert sorted((await registry.get("add")).versions) == [1]
    gone = await client.delete("add", "all")
    assert gone.deleted_versions == (1,) and gone.versions == ()
    assert await registry.list() == []


async def test_save_writes_the_file_of_a_version(client, model_files, tmp_path):
    await client.upload("add", model_files.add_one)
    record = await client.save("add", tmp_path / "copy.onnx", version=1)
    assert (tmp_path / "copy.onnx").read_bytes() == model_files.add_one.read_bytes()
    assert record.version == 1


async def test_a_file_onnxruntime_cannot_load_is_422_and_stores_nothing(
    client, registry, model_files
):
    with pytest.raises(UnprocessableError, match="not an ONNX model"):
        await client.upload("bad", model_files.not_onnx)
    assert await registry.list() == []


async def test_a_file_that_is_not_onnx_by_name_is_415(client, tmp_path, model_files):
    renamed = tmp_path / "model.pkl"
    renamed.write_bytes(model_files.add_one.read_bytes())
    with pytest.raises(UnsupportedMediaTypeError):
        await client.upload("add", renamed)


@pytest.mark.parametrize(
    "change",
    [
        lambda c: c.model("nosuch"),
        lambda c: c.delete("nosuch"),
        lambda c: c.delete("nosuch", "all"),
        lambda c: c.set_default("nosuch", 1),
        lambda c: c.set_description("nosuch", "x"),
        lambda c: c.download("nosuch"),
    ],
    ids=["model", "delete", "delete-all", "set-default", "set-description", "download"],
)
async def test_an_unknown_model_is_404_everywhere(client, change):
    with pytest.raises(ModelNotFoundError) as caught:
        await change(client)
    assert caught.value.status == 404


async def test_an_unknown_version_is_404(client, model_files):
    await client.upload("add", model_files.add_one)
    with pytest.raises(ModelNotFoundError, match="no version 5"):
        await client.set_default("add", 5)
    with pytest.raises(ModelNotFoundError, match="no version 5"):
        await client.delete("add", 5)
