"""The gateway's hedging counts on its `GET /metrics`: how often a host was silent or refused.

A rise of `mlbuffet_inference_hedges` with `..._hedge_wins` close behind means
modelhosts die or stall with requests in hand; `..._budget_refusals` means the
retry budget held hedging back (overload, or every host gone).
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector

from mlbuffet.mesh.hedging import HedgeCounts

FAMILIES = (
    ("requests", "mlbuffet_inference_requests", "Inference requests sent to modelhosts"),
    ("hedged", "mlbuffet_inference_hedges", "Copies sent because a host gave no answer in time"),
    (
        "hedge_wins",
        "mlbuffet_inference_hedge_wins",
        "Requests answered by a hedge, not an earlier copy",
    ),
    ("retried", "mlbuffet_inference_retries", "Copies sent because a host answered 503"),
    ("refused", "mlbuffet_inference_budget_refusals", "Hedges or retries the budget refused"),
)


class HedgeMetrics(Collector):
    def __init__(self, counts: HedgeCounts) -> None:
        self.counts = counts

    def collect(self) -> Iterator[Metric]:
        values = self.counts.as_dict()
        for key, name, documentation in FAMILIES:
            family = CounterMetricFamily(name, documentation)
            family.add_metric([], float(values[key]))
            yield family
