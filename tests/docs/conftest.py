"""The README test starts `mlbuffet up` as tests/cli does."""

from tests.cli.conftest import start_up  # noqa: F401 (a shared fixture)
