"""`mlbuffet status`: the cluster's nodes and models as a table (or JSON), from the metrics actor."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any

from mlbuffet.cli.watch import WatchConfig, watch_parser
from mlbuffet.config import nats_config_from
from mlbuffet.mesh.connection import NatsUnavailableError, close_quietly, connect
from mlbuffet.observe.cluster_status import cluster_status
from mlbuffet.protocol.cluster import ClusterStatus
from mlbuffet.protocol.errors import MLBuffetError
from mlbuffet.roles.runner import StartupError, run_role


def parse_args(argv: Sequence[str] | None, environ: Mapping[str, str]) -> tuple[WatchConfig, str]:
    parser = watch_parser(
        "mlbuffet status",
        "Show every node and model of the cluster (needs a metrics actor).",
        environ,
    )
    parser.add_argument(
        "--timeout", type=float, default=3.0, metavar="SECONDS", help="wait this long for an answer"
    )
    args = parser.parse_args(argv)
    return WatchConfig(nats_config_from(args), args.json, args.timeout), args.log_level


def table(rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return [
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]


def _mib(n: Any) -> str:
    return f"{int(n) / (1 << 20):.0f} MiB" if isinstance(n, int) else "-"


def _ms(seconds: Any) -> str:
    return f"{seconds * 1000:.2f} ms" if isinstance(seconds, int | float) else "-"


def render(status: ClusterStatus, now: float | None = None) -> list[str]:
    now = time.time() if now is None else now
    nodes = [
        [
            "NODE",
            "ROLE",
            "STATE",
            "CPU%",
            "RSS",
            "IN FLIGHT",
            "REQUESTS",
            "REQ/S",
            "LAST SEEN",
            "MODELS",
        ]
    ]
    for n in status.nodes:
        nodes.append(
            [
                str(n.get("node")),
                str(n.get("role")),
                str(n.get("state")),
                f"{float(n.get('cpu_percent', 0)):.1f}",
                _mib(n.get("rss_bytes")),
                str(n.get("in_flight", 0)),
                str(n.get("requests", 0)),
                f"{float(n.get('requests_per_s', 0)):.2f}",
                f"{max(0.0, now - float(n.get('last_seen', now))):.1f}s ago",
                ",".join(n.get("models", [])) or "-",
            ]
        )
    models = [["MODEL", "VERSION", "NODES", "SUCCESS", "FAILURE", "REQ/S", "P50", "P99"]]
    for m in status.models:
        models.append(
            [
                str(m.get("model")),
                str(m.get("version")),
                ",".join(m.get("nodes", [])) or "-",
                str(m.get("success", 0)),
                str(m.get("failure", 0)),
                f"{float(m.get('requests_per_s', 0)):.2f}",
                _ms(m.get("p50_s")),
                _ms(m.get("p99_s")),
            ]
        )
    lines = table(nodes)
    lines.append("")
    lines += table(models) if len(models) > 1 else ["no models loaded"]
    return lines


async def show(config: WatchConfig, stop: asyncio.Event) -> int:
    try:
        nc = await connect(config.nats, name="mlbuffet-status")
    except NatsUnavailableError as exc:
        raise StartupError(str(exc)) from None
    try:
        status = await cluster_status(nc, config.timeout_s)
    except MLBuffetError as exc:
        print(f"mlbuffet status: {exc.message}", file=sys.stderr)
        return 1
    finally:
        await close_quietly(nc)
    if config.json:
        print(json.dumps(status.to_dict(), indent=2))
    else:
        print("\n".join(render(status)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_role(argv, parse_args, show)


if __name__ == "__main__":
    sys.exit(main())
