"""The inspector's own limits: a load that hangs is killed, a load that allocates too much fails.

Either way the next upload is checked by a fresh worker.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from mlbuffet.protocol.errors import UnprocessableError
from mlbuffet.registry import ModelInspector
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
