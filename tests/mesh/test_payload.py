"""The one payload-size check: over the server's max_payload is a 413 before anything is sent."""

from __future__ import annotations

import pytest

from mlbuffet.mesh.errors import check_payload
from mlbuffet.protocol.errors import PayloadTooLargeError


async def test_a_payload_at_the_limit_passes_and_one_byte_more_is_413(nc):
    check_payload(nc, b"\x00" * nc.max_payload)
    with pytest.raises(PayloadTooLargeError) as caught:
        check_payload(nc, b"\x00" * (nc.max_payload + 1), "the answer", "ask for fewer outputs")
    assert caught.value.status == 413
    assert caught.value.message == (
        f"the answer is {nc.max_payload + 1} bytes encoded, over the NATS limit of "
        f"{nc.max_payload}; ask for fewer outputs"
    )
