"""`import mlbuffet` stays light: the client, onnxruntime and pillow load only when used."""

from __future__ import annotations

import subprocess
import sys

import pytest


def loaded_after(code: str) -> set[str]:
    """Top-level modules a fresh interpreter has loaded after running `code`."""
    probe = f"{code}\nimport sys\nprint(' '.join(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    ).stdout
    return set(out.split())


@pytest.mark.parametrize(
    "code",
    [
        "import mlbuffet",
        "import gateway.__main__",
        "import mlbuffet.cli.models, mlbuffet.cli.predict, mlbuffet.cli.rest_transport",
    ],
)
def test_these_imports_load_neither_the_client_nor_onnxruntime(code):
    loaded = loaded_after(code)
    assert "onnxruntime" not in loaded
    if code == "import mlbuffet":
        assert "mlbuffet.client" not in loaded and "numpy" not in loaded


def test_the_client_loads_on_first_use():
    loaded = loaded_after("import mlbuffet\nmlbuffet.Client, mlbuffet.SyncClient")
    assert "mlbuffet.client" in loaded and "onnxruntime" not in loaded


def test_an_unknown_attribute_is_an_attribute_error():
    import mlbuffet

    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = mlbuffet.Nope
