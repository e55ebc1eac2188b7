"""How much memory this machine gives a role: the bound a modelhost's budget defaults to.

A modelhost's `--memory-budget` is what its models may take. Without one it
takes a share of what the process may use: the machine's memory, or its
cgroup's limit (a container's `--memory`, a Kubernetes limit) when that is
lower. Half leaves room for the process itself, the page cache and whatever
else runs beside it; `mlbuffet up` divides that half among its modelhosts.
"""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_BUDGET_SHARE = 0.5
"""Part of the memory available to a modelhost that its models may take by default."""

CGROUP_LIMIT_FILES = (
    Path("/sys/fs/cgroup/memory.max"),  # cgroup v2
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),  # cgroup v1
)


def available_memory_bytes() -> int:
    """The machine's physical memory, or the process's cgroup limit if that is lower."""
    physical = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in CGROUP_LIMIT_FILES:
        try:
            raw = path.read_text().strip()
        except OSError:
            continue
        # "max" (v2) or a huge number (v1) means no limit.
        if raw.isdigit() and 0 < int(raw) < physical:
            return int(raw)
    return physical


def default_memory_budget(hosts: int = 1) -> int:
    """Each of `hosts` modelhosts' share when they run on this machine together."""
    return int(available_memory_bytes() * DEFAULT_BUDGET_SHARE) // max(1, hosts)
