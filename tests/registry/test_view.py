"""RegistryView: a live copy of the records, fed by a KV watch, across connections."""

from __future__ import annotations

import pytest

from mlbuffet.mesh.connection import close_quietly, connect
from mlbuffet.protocol.errors import ModelNotFoundError
from mlbuffet.registry import Registry, RegistryView
from tests.conftest import eventually


@pytest.fixture
async def other_registry(nats_config, registry):
    """The same registry through a second NATS connection, as another process would see it."""
    client = await connect(nats_config, name="other-process")
    opened, _ = await Registry.open(client.jetstream())
    yield opened
    await close_quietly(client)


async def test_the_view_sees_uploads_defaults_and_deletes_from_another_connection(
    registry, other_registry, upload, model_files
):
    await upload("before", model_files.add_one)
    changes: list[tuple[str, int | None]] = []
    async with RegistryView(other_registry) as view:
        view.add_listener(
            lambda name, record: changes.append((name, record and record.default_version))
        )
        assert set(view.records) == {"before"}

        await upload("adder", model_files.add_one)
        await upload("adder", model_files.add_two)
        await eventually(
            lambda: "adder" in view.records and view.records["adder"].default_version == 2
        )
        await registry.set_default("adder", 1)
        await eventually(lambda: view.records["adder"].default_version == 1)
        await registry.set_description("adder", "changed elsewhere")
        await eventually(lambda: view.records["adder"].description == "changed elsewhere")
        await registry.delete_model("adder")
        await eventually(lambda: "adder" not in view.records)

    # Listeners hear every change in order (an upload is two: reserve, then commit).
    distinct = [c for i, c in enumerate(changes) if i == 0 or c != changes[i - 1]]
    assert distinct == [("adder", 1), ("adder", 2), ("adder", 1), ("adder", None)]


async def test_a_reservation_without_a_version_is_not_a_model_in_the_view(
    registry, other_registry, upload, model_files
):
    async with RegistryView(other_registry) as view:
        await registry.kv.put("half", b"")
        await upload("adder", model_files.add_one)
        await eventually(lambda: "adder" in view.records)
        assert "half" not in view.records


async def test_the_view_starts_and_keeps_serving_when_a_record_is_corrupt(
    registry, other_registry, upload, model_files
):
    await upload("good", model_files.add_one)
    await registry.kv.put("broken", b"{not json")
    async with RegistryView(other_registry) as view:
        assert set(view.records) == {"good"}
        good = view.records["good"]
        await registry.kv.put("good", b"[]")
        await upload("later", model_files.add_two)
        await eventually(lambda: "later" in view.records)
        assert view.records["good"] == good


async def test_get_asks_the_registry_for_what_the_view_has_not_seen(registry, upload, model_files):
    view = RegistryView(registry)  # never started: nothing comes from the watch
    await upload("adder", model_files.add_one)
    assert (await view.get("adder")).default_version == 1
    with pytest.raises(ModelNotFoundError):
        await view.get("nothing")
