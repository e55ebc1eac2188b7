"""A training job as people and scripts see it: the REST API's fields, also the CLI's over NATS."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from mlbuffet.protocol.jobs import JobRecord


def _time(value: float | None) -> str | None:
    if value is None:
        return None
    return datetime.fromtimestamp(value, UTC).isoformat(timespec="milliseconds")


def job_view(record: JobRecord) -> dict[str, Any]:
    """A job as GET /api/v1/train/<job> shows it."""
    spec = record.spec
    return {
        "job": spec.job,
        "model": spec.model,
        "state": record.state.value,
        "version": record.version,
        "exit_code": record.exit_code,
        "reason": record.reason,
        "output_file": spec.output_file,
        "description": spec.description,
        "make_default": spec.make_default,
        "timeout": spec.timeout_s,
        "files": {
            "script": spec.script,
            "requirements": spec.requirements,
            "data": list(spec.data),
        },
        "submitted_at": _time(record.submitted_at),
        "started_at": _time(record.started_at),
        "finished_at": _time(record.finished_at),
        "updated_at": _time(record.updated_at),
        "node": record.node,
        "backend": record.backend,
        "cancel_requested": record.cancel_requested,
    }
