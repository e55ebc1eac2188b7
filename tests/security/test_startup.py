"""Safe defaults: loopback with auth off says so; beyond loopback needs keys or --insecure."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from gateway.__main__ import parse_args as gateway_args
from mlbuffet.apikeys import ApiKey, KeyRing, Scope, hash_key, new_key
from mlbuffet.cli.up_config import parse_args as up_args
from mlbuffet.config import ConfigError
from tests.cli.conftest import Spawn, StartUp, spawn, start_up

__all__ = ["spawn", "start_up"]

OPEN_HOSTS = ["0.0.0.0", "::", "192.0.2.10", "gateway.example.org"]


def key_file(tmp_path: Path, *entries: tuple[str, str, str]) -> Path:
    """A key file with (name, scopes, key) entries, written as an operator would."""
    lines = ["# MLBuffet API keys: <name> <scopes> sha256:<hex>", ""]
    lines += [
        f"{name} {scopes} sha256:{hash_key(key)}  # added by the test"
        for name, scopes, key in entries
    ]
    path = tmp_path / "api-keys"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("parse", [gateway_args, up_args], ids=["gateway", "up"])
@pytest.mark.parametrize("host", OPEN_HOSTS)
def test_listening_beyond_loopback_without_keys_is_refused(parse: Any, host: str):
    with pytest.raises(ConfigError, match=r"beyond loopback.*--api-keys.*--insecure"):
        parse(["--host", host], {})


@pytest.mark.parametrize("parse", [gateway_args, up_args], ids=["gateway", "up"])
def test_loopback_without_keys_starts_with_auth_off(parse: Any):
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        config, _ = parse(["--host", host], {})
        assert config.auth_line == "API keys off (loopback only)"


@pytest.mark.parametrize("parse", [gateway_args, up_args], ids=["gateway", "up"])
def test_insecure_is_allowed_with_a_warning(parse: Any):
    config, _ = parse(["--host", "0.0.0.0", "--insecure"], {})
    assert config.auth_line.startswith("WARNING: API keys off")
    config, _ = parse(["--host", "0.0.0.0"], {"MLBUFFET_INSECURE": "1"})
    assert config.auth_line.startswith("WARNING")


@pytest.mark.parametrize("parse", [gateway_args, up_args], ids=["gateway", "up"])
def test_keys_from_a_file_and_the_environment(parse: Any, tmp_path: Path):
    path = key_file(tmp_path, ("ci", "read,predict", new_key()))
    inline = f"ops admin sha256:{hash_key(new_key())}; bot write sha256:{hash_key(new_key())}"
    config, _ = parse(["--host", "0.0.0.0", "--api-keys", str(path)], {"MLBUFFET_API_KEYS": inline})
    assert config.auth_line == "API keys on (3 keys)"
    names = {k.name: k.scopes for k in config.api_keys.keys}
    assert names == {
        "ci": {Scope.READ, Scope.PREDICT},
        "ops": {Scope.ADMIN},
        "bot": {Scope.WRITE},
    }


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("ci read", "expected '<name> <scopes> sha256:<hex>'"),
        ("ci read mlb_plainkeyinthefile", "never the key itself"),
        ("ci read sha256:abc", "64 lowercase hex"),
        ("ci fly sha256:" + "0" * 64, "unknown scope 'fly'"),
        ("ci public sha256:" + "0" * 64, "'public' is not a scope"),
        ("c/i read sha256:" + "0" * 64, "key name"),
    ],
)
def test_a_bad_key_line_is_refused_with_its_line_number(tmp_path: Path, line: str, message: str):
    path = tmp_path / "keys"
    path.write_text(f"# comment\n{line}\n")
    with pytest.raises(ConfigError, match="keys:2") as raised:
        gateway_args(["--api-keys", str(path)], {})
    assert message in str(raised.value)


def test_a_missing_key_file_is_a_config_error(tmp_path: Path):
    with pytest.raises(ConfigError, match="--api-keys"):
        up_args(["--api-keys", str(tmp_path / "nope")], {})


def test_two_keys_with_one_name_are_refused():
    digest = hash_key(new_key())
    with pytest.raises(ValueError, match="given twice"):
        KeyRing(
            (
                ApiKey("a", frozenset({Scope.READ}), digest),
                ApiKey("a", frozenset({Scope.READ}), hash_key("x")),
            )
        )


def test_the_gateway_process_refuses_an_open_host(spawn: Spawn):
    proc = spawn("gateway", "--host", "0.0.0.0", "--port", "0", "--nats", "nats://127.0.0.1:1")
    assert proc.wait() == 2
    assert "listens beyond loopback" in proc.err()


def test_mlbuffet_up_refuses_an_open_host_before_starting_anything(spawn: Spawn, tmp_path: Path):
    proc = spawn("up", "--host", "0.0.0.0", "--port", "0", "--data-dir", str(tmp_path / "d"))
    assert proc.wait() == 2
    assert "--api-keys" in proc.err() and "--insecure" in proc.err()
    assert not (tmp_path / "d").exists()


def test_keys_new_prints_a_key_whose_line_the_gateway_accepts(spawn: Spawn, tmp_path: Path):
    proc = spawn("keys", "new", "--name", "ci", "--scopes", "predict,read")
    assert proc.wait() == 0
    out = proc.out()
    key = out.split("key:", 1)[1].split()[0]
    line = out.split("line:", 1)[1].strip()
    assert line == f"ci read,predict sha256:{hash_key(key)}"
    ring = KeyRing.parse(line, "printed")
    found = ring.find(key)
    assert found is not None and found.scopes == {Scope.READ, Scope.PREDICT}
    assert ring.find(key + "x") is None


def _get(url: str, key: str | None = None) -> tuple[int, Any]:
    request = urllib.request.Request(url)
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.mark.processes
def test_up_passes_its_keys_to_the_gateway_and_says_auth_is_on(start_up: StartUp, tmp_path: Path):
    reader, predictor = new_key(), new_key()
    path = key_file(tmp_path, ("reader", "read", reader), ("app", "predict", predictor))
    up = start_up("--modelhosts", "1", "--api-keys", str(path))
    assert "[up] auth        API keys on (2 keys)" in up.out()
    assert "gateway" in up.out() and "auth: API keys on (2 keys)" in up.out()
    assert _get(f"{up.rest}/api/v1/models")[0] == 401
    status, body = _get(f"{up.rest}/api/v1/models", reader)
    assert status == 200 and body["model_list"] == ["diabetes", "iris"]
    assert _get(f"{up.rest}/api/v1/models", predictor)[0] == 403
    assert reader not in up.out() + up.err() and predictor not in up.out() + up.err()


@pytest.mark.processes
def test_up_on_loopback_says_auth_is_off(start_up: StartUp):
    up = start_up("--modelhosts", "0", "--no-samples")
    assert "[up] auth        API keys off (loopback only)" in up.out()
    assert "(Ctrl-C stops it; API keys off (loopback only))" in up.out()


@pytest.mark.parametrize(
    ("args", "generated"),
    [
        ([], False),
        (["--nats-auth"], True),
        (["--nats-host", "0.0.0.0"], True),
        (["--nats-host", "::"], True),
        (["--nats-host", "127.0.0.1"], False),
        (["--nats", "nats://127.0.0.1:4222", "--nats-host", "0.0.0.0"], False),
    ],
)
def test_up_generates_nats_users_when_its_nats_server_is_reachable_from_outside(
    args: list[str], generated: bool
):
    config, _ = up_args(args, {})
    assert config.nats_credentials is generated


@pytest.mark.parametrize(
    ("settings", "prefix"),
    [
        ({}, "_INBOX"),
        ({"user": "gateway", "password": "p"}, "_INBOX.gateway"),
        ({"user": "a.b", "password": "p"}, "_INBOX"),
        ({"user": "me*", "password": "p"}, "_INBOX"),
        ({"user": "gateway", "password": "p", "inbox_prefix": "_I.gw"}, "_I.gw"),
    ],
)
def test_reply_inboxes_live_under_the_user_name(settings: dict[str, str], prefix: str):
    from mlbuffet.config import NatsConfig

    assert NatsConfig(**settings).reply_prefix == prefix  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["_INBOX.>", "a..b", "x y", ""])
def test_a_wildcard_inbox_prefix_is_refused(bad: str):
    from mlbuffet.config import NatsConfig

    with pytest.raises(ConfigError):
        NatsConfig(inbox_prefix=bad)


def test_children_get_nats_secrets_in_their_environment_not_their_command_line():
    from mlbuffet.config import NatsConfig, nats_arguments

    config = NatsConfig(user="gateway", password="s3cret", token="t0ken")
    assert "s3cret" not in nats_arguments(config) and "t0ken" not in nats_arguments(config)
    assert config.environment() == {
        "MLBUFFET_NATS_PASSWORD": "s3cret",
        "MLBUFFET_NATS_TOKEN": "t0ken",
    }
