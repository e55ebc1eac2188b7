"""What `mlbuffet up` runs: nats-server, a gateway, N modelhosts, a metrics actor and a trainer, in order.

Start: check ports, start nats-server, open the registry (creating it on
first start), then launch the gateway and the modelhosts in parallel while
the sample models are registered; once they are up, the metrics actor and
the trainer, while waiting until every modelhost serves every sample. Stop: gateway first (it stops taking requests), then
the modelhosts and the trainer (they drain) and the metrics actor, then nats-server (it
flushes JetStream).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
from collections.abc import Coroutine
from dataclasses import replace
from pathlib import Path
from typing import Any

from nats.aio.client import Client

from mlbuffet.cli.activation import tools_hint
from mlbuffet.cli.embedded import EmbeddedNats
from mlbuffet.cli.process import ChildExitedError, ChildProcess, ChildSpec, Console
from mlbuffet.cli.sample_models import (
    LoadTracker,
    SampleError,
    register_samples,
)
from mlbuffet.cli.supervisor import RestartPolicy, Supervisor, stop_in_order
from mlbuffet.cli.up_config import UpConfig
from mlbuffet.config import NatsConfig, nats_arguments
from mlbuffet.mesh.connection import NatsUnavailableError, close_quietly, connect
from mlbuffet.natsd.server import NatsServerConfig, NatsServerError, check_port_free
from mlbuffet.natsd.users import GeneratedCredentials
from mlbuffet.registry import Registry
from mlbuffet.roles.node_ids import stable_node_id
from mlbuffet.roles.ready_lines import (
    GATEWAY_READY,
    METRICS_READY,
    MODELHOST_READY,
    TRAINER_READY,
    models_in_ready_line,
)
from mlbuffet.roles.runner import StartupError

STOP_GRACE_S = 5.0
"""How much longer than the children's drain timeout `up` waits before it kills them."""


def role_command(role: str, *args: str) -> tuple[str, ...]:
    """The command line of a child: this Python, unbuffered, running `mlbuffet <role>`."""
    return (sys.executable, "-u", "-m", "mlbuffet", role, *args)


def gateway_security_arguments(config: UpConfig) -> list[str]:
    """The gateway's --api-keys, --insecure and --cors-origin flags, as `up` was given them."""
    args = ["--api-keys", config.api_keys_file] if config.api_keys_file else []
    if config.insecure:
        args.append("--insecure")
    for origin in config.cors_origins:
        args += ["--cors-origin", origin]
    return args


class ProcessTree:
    """Every process `mlbuffet up` owns, and the order they start and stop in."""

    def __init__(self, config: UpConfig, console: Console) -> None:
        self.config = config
        self.console = console
        self.nats: EmbeddedNats | None = None
        self.nats_urls: tuple[str, ...] = config.nats_urls
        self.gateway: ChildProcess | None = None
        self.modelhosts: list[ChildProcess] = []
        self.metrics: ChildProcess | None = None
        self.trainer: ChildProcess | None = None
        self.rest_url = ""
        self.metrics_url = ""
        self.samples_registered: list[str] = []
        self.models: list[str] = []
        self.supervisor: Supervisor | None = None
        self._nc: Client | None = None
        self._tracker = LoadTracker()
        self.credentials = GeneratedCredentials.generate() if config.nats_credentials else None
        """Users of the embedded nats-server, made anew at every start; None: no auth."""

    @property
    def children(self) -> list[ChildProcess]:
        return [
            c for c in (self.gateway, *self.modelhosts, self.metrics, self.trainer) if c is not None
        ]

    @property
    def launched(self) -> bool:
        """Whether any process was started (a port in use stops `up` before the first one)."""
        return self.nats is not None or any(c.pid is not None for c in self.children)

    async def start(self) -> None:
        """Bring everything up; StartupError (one line for the user) if any part cannot start."""
        config = self.config
        try:
            check_port_free(config.host, config.port, "REST gateway, --port")
            if config.metrics_port > 0:
                check_port_free(config.host, config.metrics_port, "metrics, --metrics-port")
            if config.embedded_nats:
                check_port_free(config.nats_host, config.nats_port, "NATS, --nats-port")
                config.data_dir.mkdir(parents=True, exist_ok=True)
                self.nats = EmbeddedNats(
                    NatsServerConfig(
                        config.data_dir,
                        config.nats_host,
                        config.nats_port,
                        extra=self.credentials.authorization() if self.credentials else "",
                    ),
                    self.console,
                    verbose=config.log_level == "debug",
                )
                self.nats_urls = (await self.nats.launch(),)
        except (NatsServerError, OSError) as exc:
            raise StartupError(str(exc)) from None
        try:
            self._nc = await connect(self._nats_as("admin"), name="mlbuffet-up")
        except NatsUnavailableError as exc:
            raise StartupError(str(exc)) from None
        # Before any child starts: whoever opens the registry first creates it, and only
        # `up` seeing it created tells a first start.
        registry, created = await Registry.open(self._nc.jetstream())
        await self._tracker.start(self._nc)
        self.supervisor = Supervisor(self.console, RestartPolicy(), config.startup_timeout_s)

        common = ("--log-level", config.log_level, "--drain-timeout", str(config.drain_timeout_s))
        self.gateway = self._child(
            "gateway",
            role_command(
                "gateway",
                *nats_arguments(self._nats_as("gateway")),
                *("--host", config.host, "--port", str(config.port)),
                *gateway_security_arguments(config),
                *common,
            ),
            GATEWAY_READY,
            self._nats_as("gateway"),
        )
        self.modelhosts = [
            self._child(
                f"modelhost-{i}",
                role_command(
                    "modelhost",
                    *nats_arguments(self._nats_as("modelhost")),
                    *("--memory-budget", str(config.memory_budget)),
                    *common,
                ),
                MODELHOST_READY,
                self._nats_as("modelhost"),
            )
            for i in range(1, config.modelhosts + 1)
        ]
        if config.metrics_port >= 0:
            self.metrics = self._child(
                "metrics",
                role_command(
                    "metrics",
                    *nats_arguments(self._nats_as("metrics")),
                    "--metrics-host",
                    config.host,
                    "--metrics-port",
                    str(config.metrics_port),
                    *common,
                ),
                METRICS_READY,
                self._nats_as("metrics"),
            )
        if config.trainer:
            # A stable node id: restarted, the trainer fails the jobs it was running at once.
            self.trainer = self._child(
                "trainer",
                role_command(
                    "trainer",
                    *nats_arguments(self._nats_as("trainer")),
                    "--node-id",
                    stable_node_id("trainer", 1),
                    *common,
                ),
                TRAINER_READY,
                self._nats_as("trainer"),
            )
        serving = [c for c in (self.gateway, *self.modelhosts) if c is not None]
        jobs: list[Coroutine[Any, Any, Any]] = [
            child.launch(config.startup_timeout_s) for child in serving
        ]
        if created and config.samples:
            jobs.append(self._register_samples(registry))
        try:
            await _all_or_nothing(jobs)
            # The serving path first: the metrics actor and the trainer start once the gateway
            # and the modelhosts are up, so on a small machine they do not delay the first
            # prediction (they would, by most of a second on 2 cores).
            await _all_or_nothing(
                [
                    *(
                        c.launch(config.startup_timeout_s)
                        for c in self.children
                        if c not in serving
                    ),
                    asyncio.wait_for(self._wait_for_samples(), config.startup_timeout_s),
                ]
            )
        except (ChildExitedError, SampleError) as exc:
            raise StartupError(str(exc)) from None
        except TimeoutError:
            raise StartupError(
                f"the modelhosts did not load the sample models within {config.startup_timeout_s:.0f}s"
            ) from None
        self._pin_gateway_port()
        self._pin_metrics_port()
        self.models = [f"{r.name}:{r.default_version}" for r in await registry.list()]
        for unit in (self.nats, *self.children):
            if unit is not None:
                self.supervisor.watch(unit)

    def _nats_as(self, role: str) -> NatsConfig:
        """How `role` connects to the NATS `up` uses: as its own user if the server has users."""
        if self.credentials is None:
            return NatsConfig(urls=self.nats_urls)
        return NatsConfig(urls=self.nats_urls, user=role, password=self.credentials.passwords[role])

    def _child(
        self, name: str, argv: tuple[str, ...], ready: re.Pattern[str], nats: NatsConfig
    ) -> ChildProcess:
        env = tuple(nats.environment().items())
        return ChildProcess(ChildSpec(name, argv, ready, env), self.console)

    async def _register_samples(self, registry: Registry) -> None:
        self.samples_registered = await register_samples(registry)

    async def _wait_for_samples(self) -> None:
        nodes = []
        for host in self.modelhosts:
            assert host.ready_match is not None
            node, served = host.ready_match.group(1), host.ready_match.group(2)
            self._tracker.note(node, models_in_ready_line(served))
            nodes.append(node)
        await self._tracker.wait(nodes, self.samples_registered)

    def _pin_gateway_port(self) -> None:
        """A restarted gateway must listen where the first one did, even if that was port 0."""
        assert self.gateway is not None and self.gateway.ready_match is not None
        self.rest_url = self.gateway.ready_match.group(2)
        port = self.rest_url.rsplit(":", 1)[1]
        argv = list(self.gateway.spec.argv)
        argv[argv.index("--port") + 1] = port
        self.gateway.spec = replace(self.gateway.spec, argv=tuple(argv))

    def _pin_metrics_port(self) -> None:
        """As the gateway's: Prometheus keeps scraping the same port across restarts."""
        if self.metrics is None or self.metrics.ready_match is None:
            return
        self.metrics_url = self.metrics.ready_match.group(2)
        port = self.metrics_url.rsplit(":", 1)[1].split("/", 1)[0]
        argv = list(self.metrics.spec.argv)
        argv[argv.index("--metrics-port") + 1] = port
        self.metrics.spec = replace(self.metrics.spec, argv=tuple(argv))

    def kill_now(self) -> None:
        """A second Ctrl-C: no more waiting for anyone."""
        for child in self.children:
            child.send(signal.SIGKILL)
        if self.nats is not None and self.nats.pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.nats.pid, signal.SIGKILL)

    async def stop(self) -> None:
        """Stop every child in order; safe after a partial start."""
        if self.supervisor is not None:
            await self.supervisor.stop_watching()
        timeout_s = self.config.drain_timeout_s + STOP_GRACE_S
        await stop_in_order([self.children[:1], self.children[1:]], timeout_s, self.console)
        await self._tracker.stop()
        if self._nc is not None:
            await close_quietly(self._nc)
        if self.nats is not None:
            await self.nats.stop()

    def summary(self, elapsed_s: float) -> list[str]:
        """What `up` prints once ready: where each part listens, then the one-line ready message."""
        config = self.config
        nats_url = ",".join(self.nats_urls)
        assert self.gateway is not None
        hosts = ", ".join(f"{h.name} (pid {h.pid})" for h in self.modelhosts) or "none"
        trainer = "none (--no-trainer)"
        if self.trainer is not None and self.trainer.ready_match is not None:
            trainer = (
                f"{self.trainer.ready_match.group(1)} (pid {self.trainer.pid}, "
                f"backend {self.trainer.ready_match.group(2)})"
            )
        if self.nats is not None:
            nats_where = f"embedded nats-server, JetStream on, pid {self.nats.pid}"
            nats_where += (
                ", a user per role with generated passwords"
                if self.credentials
                else ", no auth (loopback only)"
            )
            data = str(config.data_dir)
        else:
            nats_where = "external"
            data = "kept by the external NATS (JetStream)"
        models = ", ".join(self.models) or "none yet"
        metrics = (
            f"{self.metrics_url}  (metrics actor, pid {self.metrics.pid})"
            if self.metrics is not None
            else "off (--metrics-port -1)"
        )
        if self.samples_registered:
            models += " (sample models, registered on this first start)"
        hint = tools_hint(Path(sys.executable).parent, config.search_path)
        return [
            f"[up] REST API    {self.rest_url}  (gateway, pid {self.gateway.pid})",
            f"[up] NATS        {nats_url}  ({nats_where})",
            f"[up] data        {data}",
            f"[up] modelhosts  {hosts}",
            f"[up] metrics     {metrics}",
            f"[up] trainer     {trainer}",
            f"[up] dashboard   {self.rest_url}/dashboard",
            f"[up] models      {models}",
            f"[up] auth        {config.auth_line}",
            *([hint] if hint else []),
            f"MLBuffet is up in {elapsed_s:.1f}s: REST {self.rest_url} NATS {nats_url} "
            f"data {data if self.nats else '-'} (Ctrl-C stops it; {config.auth_line})",
        ]


async def _all_or_nothing(jobs: list[Coroutine[Any, Any, Any]]) -> None:
    """Run coroutines concurrently; the first failure cancels the others and is raised."""
    tasks = [asyncio.ensure_future(job) for job in jobs]
    try:
        await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
