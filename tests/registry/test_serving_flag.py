"""The `serving` flag of a model record: what the OIP repository extension's load/unload write."""

from __future__ import annotations

import json

import pytest

from mlbuffet.protocol.errors import InternalError, ModelNotFoundError
from mlbuffet.protocol.records import ModelRecord


async def test_set_serving_changes_only_the_flag_and_later_uploads_keep_it(
    registry, upload, model_files
):
    await upload("adder", model_files.add_one)
    before = await registry.get("adder")
    assert before.serving is True
    record = await registry.set_serving("adder", False)
    assert record.serving is False
    assert record.with_changes(serving=True, updated_at=before.updated_at) == before
    assert await registry.set_serving("adder", False) == record  # no change, no write
    await upload("adder", model_files.add_two)
    assert (await registry.get("adder")).serving is False
    assert (await registry.set_serving("adder", True)).serving is True
    with pytest.raises(ModelNotFoundError):
        await registry.set_serving("nothing", True)


async def test_a_record_without_the_flag_is_served_and_a_bad_flag_is_corrupt(
    registry, upload, model_files
):
    await upload("adder", model_files.add_one)
    document = json.loads((await registry.get("adder")).to_json())
    del document["serving"]
    assert ModelRecord.from_json(json.dumps(document).encode()).serving is True
    document["serving"] = "no"
    with pytest.raises(InternalError):
        ModelRecord.from_json(json.dumps(document).encode())
    document["serving"] = False
    parsed = ModelRecord.from_json(json.dumps(document).encode())
    assert parsed.serving is False
    assert "serving" not in parsed.extra
    assert json.loads(parsed.to_json())["serving"] is False
