"""Training over REST: submit a script, requirements and a dataset; follow the job; cancel it.

A submission is a multipart form, spooled to disk under the upload cap like
a model upload, then handed to a trainer over NATS (the files through the
Object Store); the answer is 202 with the job id, long before the job ends.
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from gateway.config import WHO
from gateway.envelope import reply
from gateway.routes.common import mesh_of
from gateway.routes.table import SMALL_BODY_BYTES, Route
from gateway.training import jobs_of
from gateway.uploads import SpooledFile, read_form, spool_folder
from mlbuffet.apikeys import Scope
from mlbuffet.protocol.errors import BadRequestError, UnprocessableError
from mlbuffet.protocol.jobs import TrainJob
from mlbuffet.protocol.names import parse_file_name, parse_job_id, parse_train_target
from mlbuffet.training import checked_timeout, log_lines, new_job_id, submit_job
from mlbuffet.training.job_view import job_view

REQUIRED_FILES = ("script", "requirements", "dataset")
DEFAULT_NAMES = {"script": "train.py", "requirements": "requirements.txt", "dataset": "dataset"}
TRUE = ("1", "true", "yes", "on")
FALSE = ("0", "false", "no", "off")


def _file_name(field: str, spooled: SpooledFile) -> str:
    raw = Path(spooled.filename).name if spooled.filename else ""
    return parse_file_name(raw or DEFAULT_NAMES.get(field, field), f"file name of {field!r}")


def _flag(raw: str | None, field: str, default: bool) -> bool:
    if raw is None or not raw.strip():
        return default
    value = raw.strip().lower()
    if value in TRUE:
        return True
    if value in FALSE:
        return False
    raise UnprocessableError(f"{field} must be true or false, not {raw!r}")


def _timeout(raw: str | None) -> float | None:
    if raw is None or not raw.strip():
        return None
    try:
        value = float(raw)
    except ValueError:
        raise UnprocessableError(f"timeout must be a number of seconds, not {raw!r}") from None
    return checked_timeout(value)


async def submit(request: web.Request) -> web.Response:
    model, output_file = parse_train_target(
        request.match_info["model"], request.match_info.get("output_file")
    )
    mesh = mesh_of(request)
    if not request.content_type.startswith("multipart/"):
        raise UnprocessableError(
            "send the job as multipart/form-data with the files 'script', 'requirements' "
            "and 'dataset'"
        )
    with spool_folder(mesh.config.tmp_dir) as folder:
        form = await read_form(
            request, folder, file_limit=mesh.config.max_upload_bytes, what="a training file"
        )
        for field in REQUIRED_FILES:
            if field not in form.files:
                raise UnprocessableError(f"No {field} file (form field '{field}') specified")
        names = {field: _file_name(field, spooled) for field, spooled in form.files.items()}
        if len(set(names.values())) != len(names):
            raise BadRequestError("two files of the form have the same file name; rename one")
        extra = [f for f in form.files if f not in REQUIRED_FILES]
        spec = TrainJob(
            job=new_job_id(),
            model=model,
            script=names["script"],
            requirements=names["requirements"],
            data=(names["dataset"], *(names[f] for f in extra)),
            output_file=output_file,
            description=form.fields.get("description") or None,
            make_default=_flag(form.fields.get("make_default"), "make_default", True),
            timeout_s=_timeout(form.fields.get("timeout")),
        )
        files = {names[field]: spooled.path for field, spooled in form.files.items()}
        accepted = await submit_job(mesh.nc, jobs_of(request), spec, files, who=WHO)
    return reply(
        202,
        f"Training job {accepted.job} for model {model} accepted",
        job=accepted.job,
        model=model,
        state=accepted.state.value,
        status_url=f"/api/v1/train/{accepted.job}",
        logs_url=f"/api/v1/train/{accepted.job}/logs",
    )


async def get_job(request: web.Request) -> web.Response:
    job = parse_job_id(request.match_info["job"])
    record = await jobs_of(request).get(job)
    return reply(200, **job_view(record))


async def list_jobs(request: web.Request) -> web.Response:
    records = await jobs_of(request).list()
    return reply(200, jobs=[job_view(r) for r in records])


async def cancel(request: web.Request) -> web.Response:
    job = parse_job_id(request.match_info["job"])
    record = await jobs_of(request).request_cancel(job, mesh_of(request).node_id)
    if record.state.finished:
        return reply(200, f"Training job {job} cancelled", **job_view(record))
    return reply(
        202, f"Training job {job}: cancel requested, its trainer is stopping it", **job_view(record)
    )


async def logs(request: web.Request) -> web.StreamResponse:
    job = parse_job_id(request.match_info["job"])
    follow = _flag(request.query.get("follow"), "follow", False)
    jobs = jobs_of(request)
    if not follow:
        lines = [line async for line in log_lines(jobs, job, follow=False)]
        return web.Response(text="".join(f"{line}\n" for line in lines), content_type="text/plain")
    await jobs.get(job)  # 404 before the stream starts
    response = web.StreamResponse(headers={"Content-Type": "text/plain; charset=utf-8"})
    response.enable_chunked_encoding()
    await response.prepare(request)
    async for line in log_lines(jobs, job, follow=True):
        await response.write(f"{line}\n".encode())
    await response.write_eof()
    return response


ROUTES = (
    Route(
        "GET",
        "/api/v1/train",
        list_jobs,
        "recent training jobs, newest first",
        Scope.TRAIN,
        SMALL_BODY_BYTES,
    ),
    Route(
        "POST",
        "/api/v1/train/{model}",
        submit,
        "train a new version of <model>: multipart files 'script', 'requirements', 'dataset' "
        "(+ more data files), optional 'description', 'make_default', 'timeout'; the script "
        "writes model.onnx (<model>.onnx for a name like iris.onnx), as sys.argv[1] or in its "
        "working folder; answers 202 with the job id",
        Scope.TRAIN,
    ),
    Route(
        "POST",
        "/api/v1/train/{model}/{output_file}",
        submit,
        "the same, with the name of the file the script writes (the original's "
        "/train/<tag>/<model_name>: <tag> is the model)",
        Scope.TRAIN,
    ),
    Route(
        "GET",
        "/api/v1/train/{job}",
        get_job,
        "a training job: state, times, exit code, version",
        Scope.TRAIN,
        SMALL_BODY_BYTES,
    ),
    Route(
        "GET",
        "/api/v1/train/{job}/logs",
        logs,
        "a training job's log; ?follow=1 streams it until the job ends",
        Scope.TRAIN,
        SMALL_BODY_BYTES,
    ),
    Route(
        "DELETE",
        "/api/v1/train/{job}",
        cancel,
        "cancel a training job",
        Scope.TRAIN,
        SMALL_BODY_BYTES,
    ),
)
