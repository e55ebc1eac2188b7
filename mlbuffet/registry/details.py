"""Registry records as the REST API shows them, for every client that shows one the same way.

The CLI answers `models show` over NATS with exactly the fields of
GET /api/v1/models/<ref>; gateway/routes/models.py can use this too.
"""

from __future__ import annotations

from typing import Any

from mlbuffet.protocol.records import ModelRecord, VersionRecord


def model_details(record: ModelRecord, version: VersionRecord) -> dict[str, Any]:
    """A version as GET /api/v1/models/<ref> shows it."""
    return {
        "model": record.name,
        "description": record.description,
        "default_version": record.default_version,
        "versions": sorted(record.versions),
        "version": version.version,
        "version_description": version.description,
        "library": version.library,
        "file": version.filename,
        "sha256": version.sha256,
        "size": version.size,
        "uploaded_at": version.uploaded_at,
        "inputs": [s.to_dict() for s in version.signature.inputs],
        "outputs": [s.to_dict() for s in version.signature.outputs],
        "settings": record.settings.to_dict(),
    }
