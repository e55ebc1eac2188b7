"""The memory a modelhost's budget defaults to: the machine's, or its cgroup's limit if lower."""

from __future__ import annotations

import os

import pytest

from mlbuffet.roles import memory


def physical() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


@pytest.mark.parametrize(
    ("limit", "lower"),
    [("max\n", False), (f"{2**30}\n", True), (f"{2**62}\n", False), ("junk", False)],
)
def test_a_cgroup_limit_counts_only_when_it_is_a_number_below_the_machine(
    tmp_path, monkeypatch, limit, lower
):
    cgroup = tmp_path / "memory.max"
    cgroup.write_text(limit)
    monkeypatch.setattr(memory, "CGROUP_LIMIT_FILES", (tmp_path / "absent", cgroup))
    expected = 2**30 if lower and 2**30 < physical() else physical()
    assert memory.available_memory_bytes() == expected


def test_the_default_budget_is_half_of_it_shared_among_hosts(tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "CGROUP_LIMIT_FILES", (tmp_path / "absent",))
    assert memory.default_memory_budget() == physical() // 2
    assert memory.default_memory_budget(4) == physical() // 2 // 4
