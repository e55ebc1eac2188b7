"""The bench's report judges the issue's targets from the figures it is given, and hides no peer."""

from __future__ import annotations

from bench import report
from bench.load import Measured
from bench.scenarios import Row
from bench.servers import Cell, ServerRow


def cell(rps: float, p50_ms: float = 1.0, p99_ms: float = 10.0, **cpu_us: float) -> Cell:
    return Cell(Measured(int(rps), 0, 1.0, rps, p50_ms, p99_ms, "test"), dict(cpu_us))


def servers(ours_rps_64: float, ours_p50_1: float = 1.0) -> list[ServerRow]:
    ours = ServerRow(report.OURS_REFERENCE, "mesh", ours=True)
    ours.cells = {
        1: cell(500, p50_ms=ours_p50_1),
        64: cell(ours_rps_64, p99_ms=10, gateway=120, modelhost=60, nats_server=20),
    }
    ceiling = ServerRow(f"{report.CEILING} (the in-process HTTP ceiling)", "one process")
    ceiling.cells = {1: cell(3000), 64: cell(4000)}  # faster than ours: never the "best peer"
    mlserver = ServerRow("MLServer 1.7.1", "parallel_workers: 0 (in process)")
    mlserver.cells = {1: cell(800, p50_ms=2.0), 64: cell(900, p99_ms=30)}
    triton = ServerRow("Triton via PyTriton", "2 instances")
    triton.cells = {1: cell(300), 64: cell(1000, p99_ms=25)}
    missing = ServerRow("LitServe 0.2.19", "2 workers", why="not installed: python -m bench...")
    return [ours, ceiling, mlserver, triton, missing]


def by_number(found: list[report.Target]) -> dict[int, report.Target]:
    return {t.number: t for t in found}


def test_targets_are_met_when_every_figure_is_within_them() -> None:
    found = by_number(report.targets(servers(3000), [], modelhost_nats_cpu_us=50))
    assert found[1].met is True  # 3000 / 1000 (PyTriton, the best peer) = 3x; 0.75x the ceiling
    assert "Triton via PyTriton" in found[1].figure
    assert found[2].met is True  # p50 1 ms against MLServer's 2 ms
    assert found[3].met is True  # 200 us over three processes, 50 us for the modelhost
    assert found[4].met is None and found[5].met is None  # their rows were not measured


def test_each_target_is_missed_by_its_own_figure() -> None:
    found = by_number(report.targets(servers(2900, ours_p50_1=2.5), [], modelhost_nats_cpu_us=61))
    assert found[1].met is False  # 2.9x the best peer
    assert found[2].met is False
    assert found[3].met is False  # the modelhost's 61 us alone misses it


def test_a_scenario_row_decides_targets_4_and_5() -> None:
    client = Row("mlbuffet.client on iris, 64 in flight", cell(100).measured, ratio=0.7, target=0.6)
    cnn = Row("squeezenet over NATS, 16 clients", cell(10).measured, "img/s", 0.5, target=0.9)
    found = by_number(report.targets(servers(3000), [client, cnn], None))
    assert found[4].met is True
    assert found[5].met is False
    assert found[3].met is None  # no NATS CPU figure in this run


def test_a_peer_that_is_not_installed_is_in_the_table_with_its_reason() -> None:
    rows = servers(3000)
    text = "\n".join(report.server_table(rows))
    assert "LitServe 0.2.19" in text and "not installed" in text
    markdown = report.markdown(rows, report.targets(rows, [], None))
    assert markdown.count("\n| ") == len(rows) + 1  # separator and one line per server
    assert "3.00x" in markdown  # ours against PyTriton at 64 connections
