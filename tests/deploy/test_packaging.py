"""The wheel carries every package of the source tree.

pyproject.toml lists the packages by hand (mlbuffet.samples is mapped from models/, which
automatic discovery cannot express), so a new subpackage that is not listed works in an
editable install and in the tests, and is missing only from `pip install .` and the image.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TOP_PACKAGES = ("mlbuffet", "gateway", "actors")


def test_every_package_of_the_tree_is_listed_in_pyproject() -> None:
    listed = set(
        tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    on_disk = {
        ".".join(init.parent.relative_to(REPO).parts)
        for top in TOP_PACKAGES
        for init in (REPO / top).rglob("__init__.py")
    }
    assert on_disk, "no package found: the test looks in the wrong place"
    assert on_disk - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"
