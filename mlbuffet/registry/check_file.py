"""Checking an ONNX file in a fresh interpreter, for programs that are not MLBuffet roles.

ModelInspector's worker pool starts workers with multiprocessing, which
re-imports the parent's main script in each worker: a user's script without
an `if __name__ == "__main__":` guard would run again inside it. The client
runs the same check (`inspect._check`) in `python -m mlbuffet.registry.check_file`
instead, which imports nothing of the caller.

    python -m mlbuffet.registry.check_file model.onnx   # prints JSON, exit 0, or 1 and an error
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from mlbuffet.protocol.errors import MLBuffetError, UnprocessableError, error_for_status
from mlbuffet.protocol.records import Signature
from mlbuffet.registry.inspect import CHECK_TIMEOUT_S, _check, sha256_of
from mlbuffet.registry.model_file import ModelFile


async def inspect_in_subprocess(path: Path) -> ModelFile:
    """As ModelInspector.inspect: UnprocessableError if onnxruntime cannot load `path`."""
    sha256, size = await asyncio.to_thread(sha256_of, path)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", __name__, str(path),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )  # fmt: skip
    try:
        out, _ = await asyncio.wait_for(process.communicate(), CHECK_TIMEOUT_S)
    except BaseException as exc:
        process.kill()
        await process.wait()
        if isinstance(exc, TimeoutError):
            raise UnprocessableError(
                f"onnxruntime took over {CHECK_TIMEOUT_S:g} s to load the file; "
                "it is not a usable ONNX model"
            ) from None
        raise
    try:
        answer = json.loads(out)
    except ValueError:
        raise UnprocessableError(
            "onnxruntime crashed while loading the file; it is not a usable ONNX model"
        ) from None
    if "error" in answer:
        raise error_for_status(answer["error"]["code"], answer["error"]["message"])
    return ModelFile(
        path=path,
        sha256=sha256,
        size=size,
        signature=Signature.from_dict(answer["signature"]),
        description=answer["description"],
        library=answer["library"],
    )


def main(argv: Sequence[str] | None = None) -> int:
    (path,) = sys.argv[1:] if argv is None else argv
    try:
        checked = _check(path)
    except MLBuffetError as exc:
        print(json.dumps({"error": {"code": int(exc.status), "message": exc.message}}))
        return 1
    document = {
        "signature": checked.signature.to_dict(),
        "description": checked.description,
        "library": checked.library,
    }
    print(json.dumps(document))
    return 0


if __name__ == "__main__":
    sys.exit(main())
