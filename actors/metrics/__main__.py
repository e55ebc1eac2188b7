"""`mlbuffet metrics`: argv -> MetricsConfig -> a running metrics actor until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping, Sequence

from actors.base import serve_actor
from actors.metrics.config import DEFAULT_METRICS_PORT, MetricsConfig
from actors.metrics.service import MetricsService
from mlbuffet.config import (
    add_actor_arguments,
    add_nats_arguments,
    env,
    env_float,
    env_int,
    nats_config_from,
)
from mlbuffet.roles.node_ids import new_node_id
from mlbuffet.roles.ready_lines import metrics_ready
from mlbuffet.roles.runner import run_role


def parse_args(argv: Sequence[str] | None, environ: Mapping[str, str]) -> tuple[MetricsConfig, str]:
    parser = argparse.ArgumentParser(
        prog="mlbuffet metrics",
        description="Follow every node's heartbeat: cluster view, node events, Prometheus metrics.",
    )
    add_nats_arguments(parser, environ)
    parser.add_argument(
        "--metrics-host",
        default=env(environ, "METRICS_HOST", "127.0.0.1"),
        help="address of the Prometheus endpoint (MLBUFFET_METRICS_HOST; default %(default)s)",
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=env_int(environ, "METRICS_PORT", DEFAULT_METRICS_PORT),
        help="port of the Prometheus endpoint, 0 for any free one (MLBUFFET_METRICS_PORT; default %(default)s)",
    )
    parser.add_argument(
        "--down-after",
        type=int,
        metavar="N",
        default=env_int(environ, "DOWN_AFTER", 3),
        help="declare a node down after N missed heartbeats (MLBUFFET_DOWN_AFTER; default %(default)s)",
    )
    parser.add_argument(
        "--forget-after",
        type=float,
        metavar="SECONDS",
        default=env_float(environ, "FORGET_AFTER", 600.0),
        help="drop a node from the view once down this long (default %(default)s)",
    )
    add_actor_arguments(parser, environ, "metrics actor")
    args = parser.parse_args(argv)
    config = MetricsConfig(
        nats=nats_config_from(args),
        node_id=args.node_id,
        metrics_host=args.metrics_host,
        metrics_port=args.metrics_port,
        down_after=args.down_after,
        heartbeat_interval_s=args.heartbeat_interval,
        forget_after_s=args.forget_after,
        drain_timeout_s=args.drain_timeout,
    )
    return config, args.log_level


async def serve(config: MetricsConfig, stop: asyncio.Event) -> int:
    node_id = config.node_id or new_node_id("metrics")
    return await serve_actor(
        config.nats,
        node_id,
        lambda nc: MetricsService(nc, config, node_id),
        lambda actor: metrics_ready(node_id, actor.metrics_url),
        config.drain_timeout_s,
        stop,
    )


def main(argv: Sequence[str] | None = None) -> int:
    return run_role(argv, parse_args, serve)


if __name__ == "__main__":
    sys.exit(main())
