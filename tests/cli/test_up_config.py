"""Settings of `mlbuffet up` and `mlbuffet nats`: environment defaults, flags, and refusals."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlbuffet.cli import nats as nats_role
from mlbuffet.cli.up_config import UpConfig, parse_args
from mlbuffet.config import ConfigError
from mlbuffet.roles.memory import available_memory_bytes, default_memory_budget


def test_defaults_are_the_documented_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config, level = parse_args([], {})
    assert config == UpConfig(data_dir=tmp_path / "mlbuffet-data")
    assert (config.host, config.port, config.nats_port, config.modelhosts) == (
        "127.0.0.1",
        8002,
        4222,
        2,
    )
    assert config.embedded_nats and config.samples and level == "info"


def test_the_environment_sets_defaults_and_flags_override_it(tmp_path: Path) -> None:
    environ = {
        "MLBUFFET_PORT": "9000",
        "MLBUFFET_NATS_PORT": "0",
        "MLBUFFET_MODELHOSTS": "3",
        "MLBUFFET_DATA_DIR": str(tmp_path / "from-env"),
        "MLBUFFET_NO_SAMPLES": "1",
        "MLBUFFET_LOG_LEVEL": "WARNING",
    }
    config, level = parse_args([], environ)
    assert (config.port, config.nats_port, config.modelhosts) == (9000, 0, 3)
    assert config.data_dir == tmp_path / "from-env"
    assert not config.samples and level == "warning"
    config, _ = parse_args(["--port", "0", "--modelhosts", "1"], environ)
    assert (config.port, config.modelhosts) == (0, 1)


def test_modelhost_memory_is_read_as_a_size_and_shared_by_default() -> None:
    config, _ = parse_args(["--modelhost-memory", "256MiB"], {})
    assert config.memory_budget == 256 * 2**20
    config, _ = parse_args([], {"MLBUFFET_MODELHOST_MEMORY": "2GiB", "MLBUFFET_MODELHOSTS": "3"})
    assert config.memory_budget == 2 * 2**30
    # Unset: half the machine's memory among the hosts, so they cannot fill it together.
    one, _ = parse_args(["--modelhosts", "1"], {})
    four, _ = parse_args(["--modelhosts", "4"], {})
    assert one.memory_budget == default_memory_budget(1) > 0
    assert abs(four.memory_budget * 4 - one.memory_budget) <= 4
    assert one.memory_budget <= available_memory_bytes() // 2


def test_nats_urls_mean_no_embedded_server() -> None:
    config, _ = parse_args(["--nats", "nats://a:4222, nats://b:4222"], {})
    assert config.nats_urls == ("nats://a:4222", "nats://b:4222")
    assert not config.embedded_nats


@pytest.mark.parametrize(
    ("argv", "environ", "message"),
    [
        (["--port", "70000"], {}, "--port 70000: not a TCP port"),
        (["--nats-port", "-1"], {}, "--nats-port -1: not a TCP port"),
        (["--modelhosts", "-1"], {}, "--modelhosts must not be negative"),
        (["--nats", "http://a:4222"], {}, "--nats: 'http://a:4222' is not a NATS URL"),
        (["--drain-timeout", "-1"], {}, "--drain-timeout must not be negative"),
        (["--startup-timeout", "0"], {}, "--startup-timeout must be positive"),
        ([], {"MLBUFFET_PORT": "eighty"}, "MLBUFFET_PORT='eighty' is not an integer"),
        ([], {"MLBUFFET_NO_SAMPLES": "maybe"}, "MLBUFFET_NO_SAMPLES='maybe': use 1 or 0"),
        (["--modelhost-memory", "lots"], {}, "--modelhost-memory: 'lots' is not a size"),
        (["--modelhost-memory", "0MiB"], {}, "--modelhost-memory must be above 0"),
    ],
)
def test_a_bad_setting_is_refused_with_its_name(
    argv: list[str], environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_args(argv, environ)
    assert str(caught.value).startswith(message)


def test_nats_role_reads_its_port_and_data_dir(tmp_path: Path) -> None:
    config, level = nats_role.parse_args(
        ["--nats-port", "0", "--log-level", "DEBUG"], {"MLBUFFET_DATA_DIR": str(tmp_path)}
    )
    assert (config.server.port, config.server.data_dir, config.verbose) == (0, tmp_path, True)
    assert level == "debug"
    with pytest.raises(ConfigError, match="--nats-port 99999"):
        nats_role.parse_args(["--nats-port", "99999"], {})
