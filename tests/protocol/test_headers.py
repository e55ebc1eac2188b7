"""The deadline header: what a sender writes, a modelhost reads back."""

from __future__ import annotations

import pytest

from mlbuffet.protocol.headers import Header, deadline_header, deadline_ms


@pytest.mark.parametrize("deadline_s", [0.0, 1_700_000_000.0, 1_700_000_000.9994, 4_102_444_800.5])
def test_deadline_ms_reads_back_what_deadline_header_writes(deadline_s):
    headers = deadline_header(deadline_s)
    assert list(headers) == [Header.DEADLINE.value]
    assert deadline_ms(headers) == int(deadline_s * 1000)


@pytest.mark.parametrize(
    "headers",
    [None, {}, {Header.DEADLINE.value: ""}, {Header.DEADLINE.value: "soon"}, {"Other": "5"}],
)
def test_a_missing_or_malformed_deadline_is_no_deadline(headers):
    assert deadline_ms(headers) is None
