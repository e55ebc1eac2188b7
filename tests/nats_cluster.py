"""Three real nats-server processes clustered on loopback: a stand-in for three machines.

Each node has its own data directory, client port and route port, and routes
to the other two; JetStream runs on every node, so the registry buckets get
three replicas. Ports are picked free just before the start; a clash with
another process (rare) is retried with fresh ports.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass, field
from pathlib import Path

import nats
import nats.errors
import nats.js.errors

from mlbuffet.config import NatsConfig
from mlbuffet.natsd.server import ClusterConfig, NatsServer, NatsServerConfig, NatsServerError

NODES = 3
JETSTREAM_READY_S = 20.0
START_ATTEMPTS = 3


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class NatsCluster:
    root: Path
    nodes: int = NODES
    servers: list[NatsServer] = field(default_factory=list)
    configs: list[NatsServerConfig] = field(default_factory=list)

    @property
    def urls(self) -> tuple[str, ...]:
        return tuple(f"nats://127.0.0.1:{c.port}" for c in self.configs)

    def nats_config(self, node: int | None = None) -> NatsConfig:
        """Every node's URL (the client picks one at random and fails over to the others), or
        only node `node`'s, to attach there: the client then learns the other nodes from the
        server (NATS gossips them) and fails over to them as well."""
        return NatsConfig(urls=self.urls if node is None else (self.urls[node],))

    async def start(self) -> None:
        for attempt in range(START_ATTEMPTS):
            self._plan()
            try:
                await asyncio.gather(*(server.start() for server in self.servers))
                await self.wait_for_jetstream()
                return
            except NatsServerError:
                await self.stop()
                if attempt == START_ATTEMPTS - 1:
                    raise

    def _plan(self) -> None:
        client_ports = [free_port() for _ in range(self.nodes)]
        route_ports = [free_port() for _ in range(self.nodes)]
        routes = tuple(f"nats-route://127.0.0.1:{port}" for port in route_ports)
        self.configs = [
            NatsServerConfig(
                data_dir=self.root / f"node{i}",
                port=client_ports[i],
                server_name=f"node{i}",
                cluster=ClusterConfig(name="mlbuffet-test", port=route_ports[i], routes=routes),
            )
            for i in range(self.nodes)
        ]
        self.servers = [NatsServer(config) for config in self.configs]

    async def wait_for_jetstream(self, timeout_s: float = JETSTREAM_READY_S) -> None:
        """Until the cluster has elected a JetStream leader (a second or two after forming)."""
        nc = await nats.connect(list(self.urls), connect_timeout=2)
        try:
            js = nc.jetstream(timeout=0.5)
            give_up = asyncio.get_running_loop().time() + timeout_s
            while True:
                try:
                    await js.account_info()
                    return
                except (nats.errors.Error, nats.js.errors.Error):
                    if asyncio.get_running_loop().time() > give_up:
                        raise
                    await asyncio.sleep(0.1)
        finally:
            await nc.close()

    def kill(self, index: int) -> None:
        """SIGKILL one node, as a machine that dies would."""
        process = self.servers[index]._process
        assert process is not None
        process.kill()

    async def restart(self, index: int) -> None:
        """Start a stopped or killed node again on its ports and data."""
        await self.servers[index].stop()
        self.servers[index] = NatsServer(self.configs[index])
        await self.servers[index].start()

    async def stop(self) -> None:
        await asyncio.gather(*(server.stop() for server in self.servers), return_exceptions=True)
