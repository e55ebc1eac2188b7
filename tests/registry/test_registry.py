"""The registry in JetStream: numbering, defaults, deletes, concurrency, failures, corrupt records."""

from __future__ import annotations

import asyncio
import hashlib
import io

import nats.js.errors as js_errors
import pytest

from mlbuffet.mesh.connection import close_quietly, connect
from mlbuffet.protocol import subjects
from mlbuffet.protocol.errors import ConflictError, InternalError, ModelNotFoundError
from mlbuffet.registry import Registry
from tests import onnx_models
from tests.conftest import eventually


async def file_names(registry: Registry) -> set[str]:
    try:
        return {info.name for info in await registry.files.list() if not info.deleted}
    except js_errors.NotFoundError:
        return set()


async def test_versions_are_numbered_from_one_in_upload_order(registry, upload, model_files):
    assert [
        await upload("adder", model_files.add_one),
        await upload("adder", model_files.add_two),
        await upload("adder", model_files.add_ten),
    ] == [1, 2, 3]
    record = await registry.get("adder")
    assert sorted(record.versions) == [1, 2, 3]
    assert record.default_version == 3
    assert record.versions[2].filename == "add_two.onnx"
    assert record.versions[2].library == "mlbuffet-tests"
    assert record.description == "adds 1.0 to every element"


async def test_a_deleted_version_number_is_never_given_again(registry, upload, model_files):
    for path in (model_files.add_one, model_files.add_two, model_files.add_ten):
        await upload("adder", path)
    await registry.delete_version("adder", 3)
    assert await upload("adder", model_files.add_one) == 4
    await registry.delete_version("adder", 2)
    await registry.delete_version("adder", 4)
    assert await upload("adder", model_files.add_two) == 5
    assert sorted((await registry.get("adder")).versions) == [1, 5]
    assert await file_names(registry) == {"adder/1", "adder/5"}


async def test_deleting_the_default_moves_it_to_the_newest_remaining_version(
    registry, upload, model_files
):
    for path in (model_files.add_one, model_files.add_two, model_files.add_ten):
        await upload("adder", path)
    await registry.set_default("adder", 1)
    record, deleted = await registry.delete_version("adder", None)
    assert (deleted, record.default_version, sorted(record.versions)) == (1, 3, [2, 3])
    record, deleted = await registry.delete_version("adder", 3)
    assert (deleted, record.default_version, sorted(record.versions)) == (3, 2, [2])


async def test_deleting_another_version_keeps_the_default(registry, upload, model_files):
    for path in (model_files.add_one, model_files.add_two, model_files.add_ten):
        await upload("adder", path)
    await registry.set_default("adder", 2)
    record, _ = await registry.delete_version("adder", 3)
    assert record.default_version == 2


async def test_deleting_the_last_version_removes_the_model(registry, upload, model_files):
    await upload("adder", model_files.add_one)
    await upload("other", model_files.add_two)
    record, deleted = await registry.delete_version("adder", 1)
    assert (record, deleted) == (None, 1)
    with pytest.raises(ModelNotFoundError):
        await registry.get("adder")
    assert [r.name for r in await registry.list()] == ["other"]
    assert await file_names(registry) == {"other/1"}


async def test_deleting_a_model_removes_every_version_and_its_files(registry, upload, model_files):
    await upload("adder", model_files.add_one)
    await upload("adder", model_files.add_two)
    gone = await registry.delete_model("adder")
    assert sorted(gone.versions) == [1, 2]
    assert await registry.list() == []
    assert await file_names(registry) == set()
    with pytest.raises(ModelNotFoundError):
        await registry.delete_model("adder")


async def test_an_upload_that_is_not_made_default_keeps_the_default(registry, upload, model_files):
    await upload("adder", model_files.add_one)
    assert await upload("adder", model_files.add_two, make_default=False) == 2
    assert (await registry.get("adder")).default_version == 1


async def test_changes_to_an_unknown_model_or_version_are_not_found(registry, upload, model_files):
    await upload("adder", model_files.add_one)
    with pytest.raises(ModelNotFoundError, match="no version 7"):
        await registry.set_default("adder", 7)
    with pytest.raises(ModelNotFoundError, match="'nothing' not found"):
        await registry.set_default("nothing", 1)
    with pytest.raises(ModelNotFoundError):
        await registry.set_description("nothing", "text")
    with pytest.raises(ModelNotFoundError):
        await registry.delete_version("adder", 7)
    with pytest.raises(ModelNotFoundError):
        await registry.delete_version("nothing", None)
    with pytest.raises(ModelNotFoundError):
        await registry.read("adder", 7)
    assert (await registry.get("adder")).default_version == 1


async def test_set_default_and_set_description_change_only_what_they_name(
    registry, upload, model_files
):
    await upload("adder", model_files.add_one, description="first")
    await upload("adder", model_files.add_two, description="second")
    record = await registry.set_default("adder", 1)
    assert record.default_version == 1
    record = await registry.set_description("adder", "adds things")
    assert (record.description, record.default_version) == ("adds things", 1)
    assert record.versions[2].description == "second"
    assert await registry.get("adder") == record


async def test_a_downloaded_file_is_the_uploaded_file(registry, upload, model_files):
    await upload("adder", model_files.add_two)
    buffer = io.BytesIO()
    record = await registry.download("adder", None, buffer)
    assert buffer.getvalue() == model_files.add_two.read_bytes()
    assert record.sha256 == hashlib.sha256(buffer.getvalue()).hexdigest()
    assert record.size == model_files.add_two.stat().st_size


async def test_opening_the_registry_twice_creates_the_buckets_once(nc):
    _, created = await Registry.open(nc.jetstream())
    _, again = await Registry.open(nc.jetstream())
    assert (created, again) == (True, False)


# -- many writers at once ----------------------------------------------------------


async def test_concurrent_uploads_from_tasks_and_connections_keep_every_version_and_its_file(
    nats_config, registry, inspector, tmp_path
):
    sources = [onnx_models.add_constant(tmp_path / f"add_{k}.onnx", float(k)) for k in range(24)]
    files = [await inspector.inspect(path) for path in sources]
    clients = [await connect(nats_config, name=f"writer-{i}") for i in range(3)]
    try:
        writers = [(await Registry.open(c.jetstream()))[0] for c in clients]

        async def add(i: int) -> int:
            _, version = await writers[i % 3].add_version(
                "shared", files[i], description=f"upload {i}", filename=sources[i].name
            )
            return version

        versions = await asyncio.gather(*(add(i) for i in range(len(files))))
    finally:
        for client in clients:
            await close_quietly(client)

    assert sorted(versions) == list(range(1, 25))
    record = await registry.get("shared")
    assert sorted(record.versions) == list(range(1, 25))
    assert record.next_version == 25
    for i, version in enumerate(versions):
        stored = record.versions[version]
        assert (stored.filename, stored.sha256) == (sources[i].name, files[i].sha256)
        data = await registry.read("shared", version)
        assert hashlib.sha256(data).hexdigest() == stored.sha256
        assert data == sources[i].read_bytes()


async def test_concurrent_new_models_from_several_connections_are_all_created(
    nats_config, registry, inspector, model_files
):
    model = await inspector.inspect(model_files.add_one)
    clients = [await connect(nats_config, name=f"writer-{i}") for i in range(3)]
    try:
        writers = [(await Registry.open(c.jetstream()))[0] for c in clients]
        results = await asyncio.gather(
            *(
                writers[i % 3].add_version(f"m{i % 4}", model, description=None, filename="a.onnx")
                for i in range(12)
            )
        )
    finally:
        for client in clients:
            await close_quietly(client)
    assert sorted(v for _, v in results) == [1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]
    assert {r.name: sorted(r.versions) for r in await registry.list()} == {
        f"m{i}": [1, 2, 3] for i in range(4)
    }


# -- failures leave the registry as it was ----------------------------------------


async def limit_file_store(nc, max_bytes: int) -> None:
    """Let the object store's stream hold at most `max_bytes`: a real store that is full."""
    js = nc.jetstream()
    stream = f"OBJ_{subjects.FILES_BUCKET}"
    config = (await js.stream_info(stream)).config
    config.max_bytes = max_bytes
    await js.update_stream(config)


async def test_a_file_write_the_store_refuses_leaves_the_registry_as_before(
    nc, registry, upload, inspector, model_files
):
    await upload("adder", model_files.add_one)
    before = await registry.get("adder")
    large = await inspector.inspect(model_files.large)
    await limit_file_store(nc, 1 << 20)

    with pytest.raises(js_errors.APIError):
        await registry.add_version("adder", large, description=None, filename="large.onnx")
    with pytest.raises(js_errors.APIError):
        await registry.add_version("fresh", large, description=None, filename="large.onnx")

    assert await registry.get("adder") == before
    assert await registry.entry("fresh") is None
    assert await file_names(registry) == {"adder/1"}
    await limit_file_store(nc, -1)
    assert await upload("adder", model_files.add_two) == 2


async def test_a_file_that_vanishes_before_its_upload_leaves_the_registry_as_before(
    registry, upload, inspector, model_files, tmp_path
):
    await upload("adder", model_files.add_one)
    before = await registry.get("adder")
    copy = tmp_path / "copy.onnx"
    copy.write_bytes(model_files.add_two.read_bytes())
    model = await inspector.inspect(copy)
    copy.unlink()
    with pytest.raises(FileNotFoundError):
        await registry.add_version("adder", model, description=None, filename="copy.onnx")
    assert await registry.get("adder") == before


async def reservation_seen(registry: Registry, name: str, next_version: int) -> None:
    async def reserved() -> bool:
        entry = await registry.entry(name)
        return entry is not None and entry.record.next_version == next_version

    await eventually(reserved, timeout_s=5)


async def test_a_model_deleted_during_an_upload_fails_it_and_leaves_no_file(
    nats_config, registry, upload, inspector, model_files
):
    await upload("adder", model_files.add_one)
    large = await inspector.inspect(model_files.large)
    uploading = asyncio.create_task(
        registry.add_version("adder", large, description=None, filename="large.onnx")
    )
    await reservation_seen(registry, "adder", 3)
    other = await connect(nats_config, name="deleter")
    try:
        assert not uploading.done(), "the upload finished before the delete: not what is tested"
        await (await Registry.open(other.jetstream()))[0].delete_model("adder")
    finally:
        await close_quietly(other)

    with pytest.raises(ConflictError, match="deleted during the upload"):
        await uploading
    assert await registry.list() == []
    assert await file_names(registry) == set()


async def test_a_new_models_record_deleted_during_its_upload_fails_it(
    registry, inspector, model_files
):
    large = await inspector.inspect(model_files.large)
    uploading = asyncio.create_task(
        registry.add_version("fresh", large, description=None, filename="large.onnx")
    )
    await reservation_seen(registry, "fresh", 2)
    assert not uploading.done()
    await registry.kv.delete("fresh")  # as `nats kv del` by an operator would
    with pytest.raises(ConflictError):
        await uploading
    assert await registry.entry("fresh") is None
    assert await file_names(registry) == set()


# -- corrupt records -----------------------------------------------------------------


CORRUPT_RECORDS = [
    b"{not json",
    b"\xff\xfe",
    b"[]",
    b"null",
    b'{"name": "broken"}',
    b"[" * 100_000,
]


@pytest.mark.parametrize("value", CORRUPT_RECORDS, ids=lambda v: repr(v[:20]))
async def test_a_corrupt_record_is_an_internal_error_and_hides_no_other_model(
    registry, upload, model_files, value
):
    await upload("good", model_files.add_one)
    await registry.kv.put("broken", value)
    with pytest.raises(InternalError, match="corrupt registry record"):
        await registry.get("broken")
    assert [r.name for r in await registry.list()] == ["good"]


async def test_a_record_whose_default_is_not_one_of_its_versions_is_corrupt(
    registry, upload, model_files
):
    await upload("adder", model_files.add_one)
    record = await registry.get("adder")
    await registry.kv.put("adder", record.with_changes(default_version=9).to_json())
    with pytest.raises(InternalError, match="default version 9"):
        await registry.get("adder")
    await registry.kv.put("adder", record.with_changes(next_version=1).to_json())
    with pytest.raises(InternalError, match="next version 1"):
        await registry.get("adder")


async def test_changing_a_corrupt_record_is_refused_and_leaves_it_alone(registry):
    await registry.kv.put("broken", b"{not json")
    with pytest.raises(InternalError):
        await registry.set_description("broken", "fixed?")
    assert (await registry.kv.get("broken")).value == b"{not json"
