"""Each role's ready line is read back by the pattern `mlbuffet up` waits for."""

from __future__ import annotations

from mlbuffet.roles.ready_lines import (
    GATEWAY_READY,
    METRICS_READY,
    MODELHOST_READY,
    TRAINER_READY,
    gateway_ready,
    metrics_ready,
    modelhost_ready,
    models_in_ready_line,
    trainer_ready,
)


def test_the_gateway_line_gives_back_its_node_and_url():
    match = GATEWAY_READY.match(gateway_ready("gateway-a1", "http://[::1]:8002"))
    assert match is not None and match.groups() == ("gateway-a1", "http://[::1]:8002")


def test_the_metrics_line_gives_back_its_node_and_url():
    match = METRICS_READY.match(metrics_ready("metrics-a1", "http://127.0.0.1:9100"))
    assert match is not None and match.groups() == ("metrics-a1", "http://127.0.0.1:9100")


def test_the_trainer_line_gives_back_its_node_and_backend():
    match = TRAINER_READY.match(trainer_ready("trainer-h-1", "docker", 2))
    assert match is not None and match.groups() == ("trainer-h-1", "docker")


def test_the_modelhost_line_gives_back_its_node_and_models():
    line = modelhost_ready("modelhost-b2", {"iris": 3, "diabetes": 1, "a-b_C9": 12})
    match = MODELHOST_READY.match(line)
    assert match is not None and match.group(1) == "modelhost-b2"
    assert models_in_ready_line(match.group(2)) == {"iris", "diabetes", "a-b_C9"}


def test_a_modelhost_with_no_models_yet_says_so_and_names_none():
    match = MODELHOST_READY.match(modelhost_ready("modelhost-b2", {}))
    assert match is not None and models_in_ready_line(match.group(2)) == set()
