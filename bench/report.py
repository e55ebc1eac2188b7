"""The bench's printed report: the servers side by side, the other scenarios, the issue's targets.

Every ratio is taken within one run, between figures of the same machine and
the same load generator.
"""

from __future__ import annotations

import math
import os
import platform
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bench.scenarios import Row, ratio
from bench.servers import ServerRow

OURS_REFERENCE = "MLBuffet /api/v1 JSON"
"""The MLBuffet row every peer is compared with (the issue's REST figure)."""
CEILING = "onnxruntime + aiohttp inline"
"""Prefix of the in-process ceiling's row: a reference, not a peer configuration."""


@dataclass
class Target:
    number: int
    what: str
    figure: str
    met: bool | None
    """None: a figure it needs was not measured in this run."""

    def to_dict(self) -> dict[str, Any]:
        return {"target": self.number, "what": self.what, "figure": self.figure, "met": self.met}


def fmt(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}f}"


def grid(header: Sequence[str], lines: list[Sequence[str]]) -> list[str]:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *lines, strict=True)]
    out = [" | ".join(str(c).ljust(w) for c, w in zip(header, widths, strict=True))]
    out.append("-+-".join("-" * w for w in widths))
    out += [
        " | ".join(str(c).ljust(w) for c, w in zip(line, widths, strict=True)) for line in lines
    ]
    return out


def find(servers: list[ServerRow], prefix: str, setting: str = "") -> ServerRow | None:
    for row in servers:
        if row.server.startswith(prefix) and setting in row.setting and row.cells:
            return row
    return None


def peers_only(servers: list[ServerRow]) -> list[ServerRow]:
    """Peer configurations with figures (not ours, not the in-process ceiling)."""
    return [r for r in servers if not r.ours and not r.server.startswith(CEILING) and r.cells]


def best_peer(servers: list[ServerRow], connections: int = 64) -> ServerRow | None:
    peers = [r for r in peers_only(servers) if r.rps(connections)]
    return max(peers, key=lambda r: r.rps(connections) or 0.0, default=None)


def server_table(servers: list[ServerRow], markdown: bool = False) -> list[str]:
    """The servers side by side; `markdown` gives the same as a Markdown table (for docs/)."""
    ours = find(servers, OURS_REFERENCE)
    header = (
        "server",
        "setting",
        "c=1 req/s (p50 ms)",
        "c=64 req/s (p99 ms)",
        "CPU us/req c=64",
        "MLBuffet /api/v1 vs it: c=64, c=1",
    )
    lines: list[Sequence[str]] = []
    for row in servers:
        if not row.cells:
            lines.append((row.server, row.setting, row.why, "", "", ""))
            continue
        one, many = row.measured(1), row.measured(64)
        cell = row.cells.get(64)
        cpu = ""
        if cell and cell.cpu_us:
            parts = cell.cpu_us
            cpu = fmt(cell.cpu_total_us, 0)
            if len(parts) > 1:
                cpu += " (" + ", ".join(f"{k} {v:.0f}" for k, v in parts.items()) + ")"
        versus = ""
        if ours is not None and row is not ours:
            ratios = [ratio(ours.rps(c), row.rps(c)) for c in (64, 1)]
            versus = ", ".join(f"{r:.2f}x" if r is not None else "-" for r in ratios)
        lines.append(
            (
                row.server,
                row.setting,
                f"{fmt(one.rps if one else None)} ({fmt(one.p50_ms if one else None, 2)})",
                f"{fmt(many.rps if many else None)} ({fmt(many.p99_ms if many else None, 1)})",
                cpu,
                versus,
            )
        )
    notes = [f"- {r.server}, {r.setting}: {r.why}" for r in servers if r.cells and r.why]
    notes += [
        f"- {r.server}, c={c}: measured by {cell.measured.generator}"
        for r in servers
        for c, cell in r.cells.items()
        if cell.measured and "differed" in cell.measured.generator
    ]
    if markdown:
        rows = [header, tuple("---" for _ in header), *lines]
        return ["| " + " | ".join(str(c) for c in row) + " |" for row in rows] + notes
    return grid(header, lines) + notes


def markdown(servers: list[ServerRow], found: list[Target]) -> str:
    """The servers and the targets of a run, ready to paste into docs/performance.md."""
    out = server_table(servers, markdown=True)
    out += ["", *target_lines(found)]
    return "\n".join(out) + "\n"


def scenario_table(rows: list[Row]) -> list[str]:
    header = ("scenario", "rate", "p50 ms", "p99 ms", "ratio", "versus", "target")
    lines: list[Sequence[str]] = []
    for row in rows:
        m = row.measured
        if m is None:
            lines.append((row.scenario, row.note, "", "", "", "", ""))
            continue
        rate = f"{m.p50_ms / 1000:.2f} s" if row.unit == "s" else f"{fmt(m.rps)} {row.unit}"
        target = ""
        if row.target is not None:
            sign = "<=" if row.unit == "s" else ">="
            unit = " s" if row.unit == "s" else "x"
            target = f"{sign}{row.target:g}{unit} {'met' if row.met else 'MISSED'}"
        lines.append(
            (
                row.scenario,
                rate,
                fmt(m.p50_ms, 2) if row.unit != "s" else "",
                fmt(m.p99_ms, 2) if row.unit != "s" else "",
                f"{row.ratio:.2f}" + ("" if row.unit == "s" else "x")
                if row.ratio is not None
                else "-",
                row.versus,
                target,
            )
        )
    out = grid(header, lines)
    out += [f"- {r.scenario}: {r.note}" for r in rows if r.measured and r.note]
    return out


def targets(
    servers: list[ServerRow],
    rows: list[Row],
    modelhost_nats_cpu_us: float | None,
) -> list[Target]:
    """The issue's targets 1-5, judged by the figures of this run only."""
    ours = find(servers, OURS_REFERENCE)
    best = best_peer(servers)
    ceiling = find(servers, CEILING)
    mlserver0 = find(servers, "MLServer", "parallel_workers: 0")
    out = []

    ours64 = ours.measured(64) if ours else None
    best64 = best.measured(64) if best else None
    ceiling64 = ceiling.measured(64) if ceiling else None
    if ours64 and best64 and ceiling64:
        vs_best = ours64.rps / best64.rps
        vs_ceiling = ours64.rps / ceiling64.rps
        p99 = ours64.p99_ms / best64.p99_ms
        out.append(
            Target(
                1,
                "REST iris c=64: >= 3x the best peer, >= 0.6x inline aiohttp, p99 <= 0.5x the best peer's",
                f"{vs_best:.2f}x {best.server if best else ''} ({best.setting if best else ''}), "
                f"{vs_ceiling:.2f}x inline, p99 {p99:.2f}x",
                vs_best >= 3 and vs_ceiling >= 0.6 and p99 <= 0.5,
            )
        )
    else:
        out.append(Target(1, "REST iris c=64 against the best peer", "not measured", None))

    ours1 = ours.measured(1) if ours else None
    ml1 = mlserver0.measured(1) if mlserver0 else None
    if ours1 and ml1:
        out.append(
            Target(
                2,
                "one connection: p50 <= MLServer parallel_workers 0's p50",
                f"{ours1.p50_ms:.2f} ms against {ml1.p50_ms:.2f} ms",
                ours1.p50_ms <= ml1.p50_ms,
            )
        )
    else:
        out.append(Target(2, "one connection against MLServer", "not measured", None))

    cell = ours.cells.get(64) if ours else None
    rest_cpu = cell.cpu_total_us if cell else None
    if rest_cpu is not None and modelhost_nats_cpu_us is not None:
        out.append(
            Target(
                3,
                "CPU per request: REST <= 250 us (every process), modelhost <= 60 us over NATS",
                f"REST {rest_cpu:.0f} us, modelhost over NATS {modelhost_nats_cpu_us:.0f} us",
                rest_cpu <= 250 and modelhost_nats_cpu_us <= 60,
            )
        )
    else:
        out.append(Target(3, "CPU per request", "not measured", None))

    for number, prefix, what in (
        (4, "mlbuffet.client", "mlbuffet.Client iris, 64 in flight: >= 0.6x the NATS echo"),
        (5, "squeezenet over NATS", "squeezenet over NATS with batching: >= 0.9x in-process"),
    ):
        row = next((r for r in rows if r.scenario.startswith(prefix) and r.measured), None)
        if row is None or row.ratio is None:
            out.append(Target(number, what, "not measured", None))
        else:
            out.append(Target(number, what, f"{row.ratio:.2f}x", row.met))
    return out


def target_lines(found: list[Target]) -> list[str]:
    verdict = {True: "met", False: "MISSED"}
    return [
        f"{t.number}. {t.what}: "
        + ("not measured in this run" if t.met is None else f"{t.figure} -> {verdict[t.met]}")
        for t in found
    ]


def report(servers: list[ServerRow], rows: list[Row], found: list[Target], generator: str) -> str:
    out = ["HTTP servers, iris, one row per request:"]
    out += server_table(servers)
    if rows:
        out += ["", "Other scenarios:"]
        out += scenario_table(rows)
    out += ["", "The issue's targets (figures of this run):"]
    out += target_lines(found)
    out += ["", f"HTTP load: {generator}; {os.cpu_count()} cores; {platform.python_version()}"]
    return "\n".join(out)
