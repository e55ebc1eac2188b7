"""The inspector's own limits: a load that hangs is killed, a load that allocates too much fails.

Either way the next upload is checked by a fresh worker.
"""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from mlbuffet.protocol.errors import UnprocessableError
from mlbuffet.registry import ModelInspector
from mlbuffet.registry import inspect as inspect_module
from tests.onnx_models import ModelFiles


async def test_a_load_over_the_time_limit_is_killed_and_the_next_file_checked(
    model_files: ModelFiles,
) -> None:
    inspector = ModelInspector(timeout_s=0.05)  # slow_load takes most of a second
    try:
        with pytest.raises(UnprocessableError, match=r"took over 0\.05 s to load"):
            await inspector.inspect(model_files.slow_load)
        assert inspector._pool is None  # the stuck worker went with its pool
        inspector.timeout_s = 60.0
        assert (await inspector.inspect(model_files.add_two)).size > 0
    finally:
        inspector.close()


async def test_a_worker_stuck_on_its_first_try_is_replaced_and_the_file_checked_again(
    model_files: ModelFiles, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first try gets 0.05 s (slow_load takes most of a second), the second the full limit.
    monkeypatch.setattr(inspect_module, "FIRST_TRY_BASE_S", 0.05)
    monkeypatch.setattr(inspect_module, "FIRST_TRY_BYTES_PER_S", 1 << 60)
    inspector = ModelInspector(timeout_s=60.0)
    try:
        started = time.monotonic()
        checked = await inspector.inspect(model_files.slow_load)
        assert checked.size > 0 and checked.signature.inputs
        print(
            f"\ninspector: a hung first try replaced, file checked in {time.monotonic() - started:.2f} s"
        )
    finally:
        inspector.close()


PROBE = """
import resource
from mlbuffet.registry.inspect import CHECK_MEMORY_BYTES, _limit_memory
_limit_memory(CHECK_MEMORY_BYTES)
_limit_memory(CHECK_MEMORY_BYTES * 2)
assert resource.getrlimit(resource.RLIMIT_AS)[0] == CHECK_MEMORY_BYTES
try:
    bytearray(CHECK_MEMORY_BYTES)
except MemoryError:
    print("refused")
"""


def test_the_address_space_limit_only_goes_down_and_refuses_a_huge_allocation() -> None:
    """In a child process: lowering this test process's limit could starve its other threads."""
    result = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, timeout=60, check=False
    )
    assert (result.returncode, result.stdout.strip()) == (0, "refused"), result.stderr
