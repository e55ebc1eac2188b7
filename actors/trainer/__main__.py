"""`mlbuffet trainer`: argv -> TrainerConfig -> a running trainer until SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from actors.probe import ActorProbe
from actors.trainer.backend import Backend
from actors.trainer.config import (
    BACKENDS,
    DEFAULT_DOCKER_IMAGE,
    GIB,
    DockerConfig,
    TrainerConfig,
    default_cache_dir,
)
from actors.trainer.service import TrainerService
from mlbuffet.config import (
    add_actor_arguments,
    add_nats_arguments,
    default_environ,
    env,
    env_float,
    env_int,
    nats_config_from,
)
from mlbuffet.mesh.connection import NatsUnavailableError, close_quietly, connect
from mlbuffet.roles.health_listener import add_health_arguments, health_config_from, health_listener
from mlbuffet.roles.node_ids import new_node_id
from mlbuffet.roles.ready_lines import trainer_ready
from mlbuffet.roles.runner import StartupError, announce, run_role


def parse_args(argv: Sequence[str] | None, environ: Mapping[str, str]) -> tuple[TrainerConfig, str]:
    parser = argparse.ArgumentParser(
        prog="mlbuffet trainer",
        description="Run training jobs (script + requirements + dataset) and register their models.",
    )
    add_nats_arguments(parser, environ)
    add = parser.add_argument
    add(
        "--backend",
        choices=BACKENDS,
        default=env(environ, "TRAINER_BACKEND", "process"),
        help="where scripts run (MLBUFFET_TRAINER_BACKEND; default %(default)s)",
    )
    add(
        "--max-jobs",
        type=int,
        default=env_int(environ, "TRAINER_MAX_JOBS", 1),
        help="jobs run at once; the rest queue (default %(default)s)",
    )
    add("--work-dir", default=env(environ, "TRAINER_WORK_DIR"), help="where job folders are made")
    add(
        "--cache-dir",
        default=env(environ, "TRAINER_CACHE_DIR", str(default_cache_dir())),
        help="virtualenv cache of the process backend (default %(default)s)",
    )
    add(
        "--default-timeout",
        type=float,
        metavar="SECONDS",
        default=env_float(environ, "TRAINER_DEFAULT_TIMEOUT", 600.0),
        help="a job's time limit when it gives none (default %(default)s)",
    )
    add(
        "--max-timeout",
        type=float,
        metavar="SECONDS",
        default=env_float(environ, "TRAINER_MAX_TIMEOUT", 6 * 3600.0),
        help="the longest time limit a job may ask for (default %(default)s)",
    )
    add(
        "--install-timeout",
        type=float,
        metavar="SECONDS",
        default=env_float(environ, "TRAINER_INSTALL_TIMEOUT", 900.0),
        help="time limit of installing a job's requirements (default %(default)s)",
    )
    add(
        "--memory",
        type=float,
        metavar="GIB",
        default=env_float(environ, "TRAINER_MEMORY_GIB", 4.0),
        help="memory limit of a script in GiB (default %(default)s)",
    )
    add(
        "--cpus",
        type=float,
        default=env_float(environ, "TRAINER_CPUS", 1.0),
        help="CPUs of a script (default %(default)s)",
    )
    add(
        "--system-site-packages",
        action="store_true",
        help="process backend: job virtualenvs see the packages of the trainer's Python",
    )
    docker = parser.add_argument_group("docker backend")
    docker.add_argument(
        "--docker-url",
        default=env(environ, "TRAINER_DOCKER_URL"),
        help="unix:///var/run/docker.sock or tcp://host:2376 (default: DOCKER_HOST or the local socket)",
    )
    docker.add_argument("--docker-tls-ca", default=env(environ, "TRAINER_DOCKER_TLS_CA"))
    docker.add_argument("--docker-tls-cert", default=env(environ, "TRAINER_DOCKER_TLS_CERT"))
    docker.add_argument("--docker-tls-key", default=env(environ, "TRAINER_DOCKER_TLS_KEY"))
    docker.add_argument(
        "--docker-image",
        default=env(environ, "TRAINER_DOCKER_IMAGE", DEFAULT_DOCKER_IMAGE),
        help="image jobs run in, with python3 (default %(default)s)",
    )
    docker.add_argument(
        "--docker-install-network",
        default=env(environ, "TRAINER_DOCKER_INSTALL_NETWORK", "bridge"),
        help="network of the dependency step (default %(default)s; the script never has one)",
    )
    add_actor_arguments(parser, environ, "trainer")
    add_health_arguments(parser, environ)
    args = parser.parse_args(argv)
    config = TrainerConfig(
        nats=nats_config_from(args),
        node_id=args.node_id,
        backend=args.backend,
        max_jobs=args.max_jobs,
        work_dir=Path(args.work_dir) if args.work_dir else None,
        cache_dir=Path(args.cache_dir).expanduser(),
        default_timeout_s=args.default_timeout,
        max_timeout_s=args.max_timeout,
        install_timeout_s=args.install_timeout,
        memory_bytes=int(args.memory * GIB),
        cpus=args.cpus,
        system_site_packages=args.system_site_packages,
        docker=DockerConfig(
            url=args.docker_url or environ.get("DOCKER_HOST"),
            tls_ca_file=args.docker_tls_ca,
            tls_cert_file=args.docker_tls_cert,
            tls_key_file=args.docker_tls_key,
            image=args.docker_image,
            install_network=args.docker_install_network,
        ),
        drain_timeout_s=args.drain_timeout,
        heartbeat_interval_s=args.heartbeat_interval,
        health=health_config_from(args),
    )
    return config, args.log_level


def make_backend(config: TrainerConfig, environ: Mapping[str, str]) -> Backend:
    """The backend the config names; the docker one imports aiodocker only when chosen."""
    if config.backend == "docker":
        from actors.trainer.docker import DockerBackend

        return DockerBackend(
            config.docker,
            memory_bytes=config.memory_bytes,
            cpus=config.cpus,
            install_timeout_s=config.install_timeout_s,
        )
    from actors.trainer.process import ProcessBackend

    return ProcessBackend(
        config.cache_dir,
        environ,
        memory_bytes=config.memory_bytes,
        cpus=config.cpus,
        install_timeout_s=config.install_timeout_s,
        system_site_packages=config.system_site_packages,
        work_root=config.work_dir,
    )


async def serve(config: TrainerConfig, stop: asyncio.Event) -> int:
    node_id = config.node_id or new_node_id("trainer")
    probe = ActorProbe[TrainerService]()  # ready: running with a NATS connection
    async with health_listener(config.health, probe.unready_reason, f"trainer {node_id}"):
        try:
            nc = await connect(config.nats, name=node_id)
        except NatsUnavailableError as exc:
            raise StartupError(str(exc)) from None
        try:
            backend = make_backend(config, default_environ())
            trainer = probe.watch(TrainerService(nc, config, node_id, backend))
            await trainer.start()
            announce(trainer_ready(node_id, config.backend, config.max_jobs))
            await stop.wait()
            await trainer.drain(config.drain_timeout_s)
        finally:
            await close_quietly(nc)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return run_role(argv, parse_args, serve)


if __name__ == "__main__":
    sys.exit(main())
