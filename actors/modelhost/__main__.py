"""`mlbuffet modelhost`: argv -> ModelhostConfig -> a running modelhost until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping, Sequence

from actors.base import serve_actor
from actors.modelhost.config import STALL_AFTER_S, ModelhostConfig, default_workers
from actors.modelhost.readiness import unready_reason
from actors.modelhost.service import ModelhostService
from actors.probe import ActorProbe
from mlbuffet.config import (
    add_actor_arguments,
    add_nats_arguments,
    env,
    env_float,
    env_int,
    nats_config_from,
    size_setting,
    split_urls,
)
from mlbuffet.protocol.sizes import format_size
from mlbuffet.roles.health_listener import add_health_arguments, health_config_from, health_listener
from mlbuffet.roles.memory import default_memory_budget
from mlbuffet.roles.node_ids import new_node_id
from mlbuffet.roles.ready_lines import modelhost_ready
from mlbuffet.roles.runner import run_role


def _memory_budget(raw: str | None) -> int:
    budget = size_setting("--memory-budget", raw)
    return default_memory_budget() if budget is None else budget


def parse_args(
    argv: Sequence[str] | None, environ: Mapping[str, str]
) -> tuple[ModelhostConfig, str]:
    parser = argparse.ArgumentParser(
        prog="mlbuffet modelhost", description="Serve models from the registry over NATS."
    )
    add_nats_arguments(parser, environ)
    parser.add_argument(
        "--models",
        metavar="NAME[,NAME]",
        default=env(environ, "MODELHOST_MODELS"),
        help="serve only these models (default: every model in the registry)",
    )
    parser.add_argument(
        "--max-inflight",
        type=int,
        default=env_int(environ, "MODELHOST_MAX_INFLIGHT", 64),
        help="inference requests served at once (default %(default)s)",
    )
    parser.add_argument(
        "--max-queued",
        type=int,
        default=(
            env_int(environ, "MODELHOST_MAX_QUEUED", 0)
            if env(environ, "MODELHOST_MAX_QUEUED") is not None
            else None
        ),
        help="inference requests waiting for a place; more are refused with 503 "
        "(default: 4 x --max-inflight)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=env_int(environ, "MODELHOST_WORKERS", default_workers()),
        help="onnxruntime threads, one per core by default (%(default)s)",
    )
    parser.add_argument(
        "--intra-op-threads",
        type=int,
        default=env_int(environ, "MODELHOST_INTRA_OP_THREADS", 1),
        help="threads one inference may use (default %(default)s)",
    )
    parser.add_argument(
        "--pinned-versions",
        type=int,
        default=env_int(environ, "MODELHOST_PINNED_VERSIONS", 4),
        help="non-default versions kept loaded per model (default %(default)s)",
    )
    parser.add_argument(
        "--memory-budget",
        metavar="SIZE",
        default=env(environ, "MEMORY_BUDGET"),
        help="memory its loaded models may take, as 512MiB or 2GiB; least recently used ones "
        "are evicted to stay within it (MLBUFFET_MEMORY_BUDGET; default: half this machine's "
        f"memory, {format_size(default_memory_budget())})",
    )
    parser.add_argument(
        "--stall-after",
        type=float,
        metavar="SECONDS",
        default=env_float(environ, "MODELHOST_STALL_AFTER", STALL_AFTER_S),
        help="leave the queue groups while onnxruntime finishes no run for this long although "
        "runs are pending (at least 4 x the slowest recent run); 0 never (default %(default)s)",
    )
    add_actor_arguments(parser, environ, "modelhost")
    add_health_arguments(parser, environ)
    args = parser.parse_args(argv)
    config = ModelhostConfig(
        nats=nats_config_from(args),
        models=split_urls(args.models) if args.models else None,
        node_id=args.node_id,
        max_inflight=args.max_inflight,
        max_queued=args.max_queued,
        workers=args.workers,
        intra_op_threads=args.intra_op_threads,
        pinned_versions=args.pinned_versions,
        memory_budget=_memory_budget(args.memory_budget),
        drain_timeout_s=args.drain_timeout,
        stall_after_s=args.stall_after,
        heartbeat_interval_s=args.heartbeat_interval,
        health=health_config_from(args),
    )
    return config, args.log_level


def ready_line(host: ModelhostService) -> str:
    return modelhost_ready(host.node_id, {n: m.default.version for n, m in host.served.items()})


async def serve(config: ModelhostConfig, stop: asyncio.Event) -> int:
    node_id = config.node_id or new_node_id("modelhost")
    # Ready for an orchestrator: running, connected, not stalled, serving every model it should.
    probe = ActorProbe[ModelhostService](unready_reason)
    async with health_listener(config.health, probe.unready_reason, f"modelhost {node_id}"):
        return await serve_actor(
            config.nats,
            node_id,
            lambda nc: probe.watch(ModelhostService(nc, config, node_id)),
            ready_line,
            config.drain_timeout_s,
            stop,
        )


def main(argv: Sequence[str] | None = None) -> int:
    return run_role(argv, parse_args, serve)


if __name__ == "__main__":
    sys.exit(main())
