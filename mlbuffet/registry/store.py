"""The model registry: metadata in a JetStream KV bucket, files in an Object Store bucket.

Every change to a model's record is a compare-and-set on its KV revision, so
two gateways uploading, deleting or changing defaults at the same moment never
overwrite each other; the loser retries on the fresh record. A version number
is reserved in the record before its file is written, so no two uploads ever
write the same object.
"""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import nats.js.errors as js_errors
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from nats.js.object_store import ObjectStore

from mlbuffet.protocol import subjects
from mlbuffet.protocol.errors import ConflictError, InternalError, ModelNotFoundError
from mlbuffet.protocol.names import parse_upload_filename
from mlbuffet.protocol.records import ModelRecord, ModelSettings, VersionRecord
from mlbuffet.registry.buckets import StoreBuckets, bucket_keys, open_store_buckets
from mlbuffet.registry.cas import CAS_ATTEMPTS, backoff, lost_race
from mlbuffet.registry.model_file import ModelFile

log = logging.getLogger(__name__)

BUCKETS = StoreBuckets(
    records=subjects.MODELS_BUCKET,
    records_description="MLBuffet model records (one JSON document per model)",
    history=8,  # past revisions of a record: enough to see what a bad change replaced
    files=subjects.FILES_BUCKET,
    files_description="MLBuffet model files (<model>/<version>)",
)


def utc_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


@dataclass(frozen=True, slots=True)
class Entry:
    record: ModelRecord
    revision: int


class Registry:
    """Read and change models; every public method is safe to call from many processes at once."""

    def __init__(self, kv: KeyValue, files: ObjectStore) -> None:
        self.kv = kv
        self.files = files

    @classmethod
    async def open(
        cls, js: JetStreamContext, *, replicas: int | None = None
    ) -> tuple[Registry, bool]:
        """Open the buckets, creating them if needed; the flag says whether they were created.

        `replicas=None` creates them with AUTO_REPLICAS copies (registry/buckets.py)
        when the NATS cluster has that many JetStream nodes, and with one
        otherwise. Buckets that exist keep the replicas they were made with.
        """
        kv, files, created = await open_store_buckets(js, BUCKETS, replicas)
        return cls(kv, files), created

    # -- reading -------------------------------------------------------------

    async def entry(self, name: str) -> Entry | None:
        """The record of `name` with its KV revision, or None if there is none (or it is empty)."""
        try:
            found = await self.kv.get(name)
        except js_errors.KeyNotFoundError:
            return None
        if found.value is None or found.revision is None:
            return None
        return Entry(ModelRecord.from_json(found.value), found.revision)

    async def get(self, name: str) -> ModelRecord:
        entry = await self.entry(name)
        if entry is None or not entry.record.versions:
            raise ModelNotFoundError(f"model {name!r} not found")
        return entry.record

    async def list(self) -> list[ModelRecord]:
        """Every model with at least one version, sorted by name."""
        names = await bucket_keys(self.kv)
        records = await asyncio.gather(*(self._readable_entry(name) for name in names))
        return sorted(
            (e.record for e in records if e is not None and e.record.versions),
            key=lambda r: r.name,
        )

    async def _readable_entry(self, name: str) -> Entry | None:
        """entry(), but a corrupt record is logged and skipped: one must not hide every other."""
        try:
            return await self.entry(name)
        except InternalError as exc:
            log.error("registry record %r is unreadable: %s", name, exc.message)
            return None

    async def download(
        self, name: str, version: int | None, into: io.BufferedIOBase
    ) -> VersionRecord:
        """Write the file of a version into `into` and return its record."""
        record = (await self.get(name)).version(version)
        try:
            await self.files.get(subjects.file_object(name, record.version), writeinto=into)
        except js_errors.NotFoundError:
            raise ModelNotFoundError(f"the file of {name}:{record.version} is missing") from None
        return record

    async def read(self, name: str, version: int) -> bytes:
        """The bytes of one version's file."""
        buffer = io.BytesIO()
        await self.download(name, version, buffer)
        return buffer.getvalue()

    # -- changing ------------------------------------------------------------

    async def _change(
        self, name: str, change: Callable[[ModelRecord | None], ModelRecord | None]
    ) -> Entry | None:
        """Apply `change` to the current record with compare-and-set, retrying on conflicts.

        `change` gets the current record (None if absent) and returns the new
        one, or None to delete the key. It may raise to abort.
        """
        for attempt in range(CAS_ATTEMPTS):
            if attempt:
                await backoff(attempt)
            current = await self.entry(name)
            new = change(current.record if current else None)
            if current is not None and new is current.record:
                return current
            try:
                if new is None:
                    if current is not None:
                        await self.kv.delete(name, last=current.revision)
                    return None
                if current is None:
                    revision = await self.kv.create(name, new.to_json())
                else:
                    revision = await self.kv.update(name, new.to_json(), last=current.revision)
                return Entry(new, revision)
            except js_errors.APIError as exc:
                if lost_race(exc):
                    continue
                raise
        raise ConflictError(f"model {name!r} is being changed by others; try again")

    async def add_version(
        self,
        name: str,
        model: ModelFile,
        *,
        description: str | None,
        filename: str,
        make_default: bool = True,
        settings: ModelSettings | None = None,
    ) -> tuple[ModelRecord, int]:
        """Store `model` as the next version of `name` (creating the model if new).

        Returns the new record and the version number. If anything fails, the
        registry is left as it was before the call.
        """
        parse_upload_filename(filename)
        version_box: list[int] = []
        created_box: list[bool] = []

        def reserve(current: ModelRecord | None) -> ModelRecord:
            now = utc_now()
            created_box[:] = [current is None]
            if current is None:
                current = ModelRecord(
                    name=name,
                    description="",
                    default_version=0,
                    versions={},
                    next_version=1,
                    created_at=now,
                    updated_at=now,
                )
            version_box[:] = [current.next_version]
            return current.with_changes(next_version=current.next_version + 1)

        reserved = await self._change(name, reserve)
        assert reserved is not None
        version = version_box[0]
        key = subjects.file_object(name, version)
        try:
            with model.path.open("rb") as source:
                await self.files.put(key, source)
        except BaseException:
            await asyncio.shield(self._abandon(name, version, created=created_box[0]))
            raise

        record = VersionRecord(
            version=version,
            sha256=model.sha256,
            size=model.size,
            uploaded_at=utc_now(),
            description=description if description is not None else model.description,
            library=model.library,
            filename=filename,
            signature=model.signature,
        )

        def commit(current: ModelRecord | None) -> ModelRecord:
            if current is None:
                raise ConflictError(f"model {name!r} was deleted during the upload")
            return current.with_changes(
                versions={**current.versions, version: record},
                default_version=(
                    version if make_default or not current.versions else current.default_version
                ),
                # A model's own description starts as its first upload's; later
                # uploads describe their version only.
                description=current.description if current.versions else record.description,
                updated_at=record.uploaded_at,
                settings=current.settings if settings is None else settings,
            )

        try:
            committed = await self._change(name, commit)
        except BaseException:
            await asyncio.shield(self._abandon(name, version, created=created_box[0]))
            raise
        assert committed is not None
        return committed.record, version

    async def _abandon(self, name: str, version: int, *, created: bool) -> None:
        """Undo what a failed upload of `version` did, so the registry is as it was before.

        If the record holds the version after all (a commit whose answer was
        lost), the upload did happen: its file stays. Otherwise the file goes
        and the reserved number is given back, unless a later upload reserved
        one since; a record this upload created is removed again.
        """
        try:
            entry = await self.entry(name)
            if entry is not None and version in entry.record.versions:
                return
            await self._delete_file(name, version)

            def release(current: ModelRecord | None) -> ModelRecord | None:
                if current is None or current.next_version != version + 1:
                    return current
                if created and not current.versions:
                    return None
                return current.with_changes(next_version=version)

            await self._change(name, release)
        except Exception:
            # What is left is harmless: an unused number or an orphan file.
            log.warning("could not undo the failed upload of %s:%s", name, version, exc_info=True)

    async def set_default(self, name: str, version: int) -> ModelRecord:
        def change(current: ModelRecord | None) -> ModelRecord:
            if current is None or not current.versions:
                raise ModelNotFoundError(f"model {name!r} not found")
            current.version(version)  # raises for an unknown version
            return current.with_changes(default_version=version, updated_at=utc_now())

        entry = await self._change(name, change)
        assert entry is not None
        return entry.record

    async def set_description(self, name: str, description: str) -> ModelRecord:
        def change(current: ModelRecord | None) -> ModelRecord:
            if current is None or not current.versions:
                raise ModelNotFoundError(f"model {name!r} not found")
            return current.with_changes(description=description, updated_at=utc_now())

        entry = await self._change(name, change)
        assert entry is not None
        return entry.record

    async def set_serving(self, name: str, serving: bool) -> ModelRecord:
        """Mark a model served (load) or not (unload); modelhosts follow the record."""

        def change(current: ModelRecord | None) -> ModelRecord:
            if current is None or not current.versions:
                raise ModelNotFoundError(f"model {name!r} not found")
            if current.serving == serving:
                return current
            return current.with_changes(serving=serving, updated_at=utc_now())

        entry = await self._change(name, change)
        assert entry is not None
        return entry.record

    async def set_settings(self, name: str, settings: ModelSettings) -> ModelRecord:
        """Replace the model's settings; batching ones must fit its default version."""

        def change(current: ModelRecord | None) -> ModelRecord:
            if current is None or not current.versions:
                raise ModelNotFoundError(f"model {name!r} not found")
            settings.check_batchable(current.default.signature)
            return current.with_changes(settings=settings, updated_at=utc_now())

        entry = await self._change(name, change)
        assert entry is not None
        return entry.record

    async def delete_version(
        self, name: str, version: int | None
    ) -> tuple[ModelRecord | None, int]:
        """Delete one version (None: the default). The default moves to the newest remaining one.

        Returns the record afterwards (None once the last version is gone) and
        the version deleted.
        """
        deleted: list[int] = []

        def change(current: ModelRecord | None) -> ModelRecord | None:
            if current is None or not current.versions:
                raise ModelNotFoundError(f"model {name!r} not found")
            number = current.version(version).version
            deleted[:] = [number]
            remaining = {v: r for v, r in current.versions.items() if v != number}
            if not remaining:
                return None
            default = current.default_version
            if default == number:
                default = max(remaining)
            return current.with_changes(
                versions=remaining, default_version=default, updated_at=utc_now()
            )

        entry = await self._change(name, change)
        await self._delete_file(name, deleted[0])
        return (entry.record if entry else None), deleted[0]

    async def delete_model(self, name: str) -> ModelRecord:
        """Delete a model and every version of it; returns the record it had."""
        gone: list[ModelRecord] = []

        def change(current: ModelRecord | None) -> None:
            if current is None or not current.versions:
                raise ModelNotFoundError(f"model {name!r} not found")
            gone[:] = [current]

        await self._change(name, change)
        for version in gone[0].versions:
            await self._delete_file(name, version)
        return gone[0]

    async def _delete_file(self, name: str, version: int) -> None:
        """Remove a version's file; a file already gone is not an error."""
        try:
            await self.files.delete(subjects.file_object(name, version))
        except js_errors.NotFoundError:
            pass
        except Exception:
            # The record no longer points at it: an orphan file wastes space, loses nothing.
            log.warning("could not delete the file of %s:%s", name, version, exc_info=True)
