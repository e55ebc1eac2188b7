"""Memory sizes: what `--memory-budget` accepts, and how messages show sizes."""

from __future__ import annotations

import pytest

from mlbuffet.protocol.sizes import format_size, parse_size


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512MiB", 512 * 2**20),
        ("2GiB", 2 * 2**30),
        ("2gib", 2 * 2**30),
        (" 256 MiB ", 256 * 2**20),
        ("1.5G", 3 * 2**29),
        ("64k", 64 * 1024),
        ("1MB", 1_000_000),
        ("4096", 4096),
        ("0", 0),
    ],
)
def test_sizes_are_read_in_the_units_they_name(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "MiB", "-1GiB", "2 GiBs", "1e9", "two GiB", "1,5GiB"])
def test_what_is_not_a_size_is_refused_with_an_example(text):
    with pytest.raises(ValueError, match="512MiB or 2GiB"):
        parse_size(text)


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (0, "0 B"),
        (1023, "1023 B"),
        (1536, "1.5 KiB"),
        (4 * 2**20 + 2**19, "4.5 MiB"),
        (2**31, "2.0 GiB"),
    ],
)
def test_sizes_are_shown_in_the_largest_binary_unit_they_reach(size, shown):
    assert format_size(size) == shown


@pytest.mark.parametrize("size", [1, 999, 5000, 3 * 2**20 + 12345, 7 * 2**30 + 2**28])
def test_a_shown_size_reads_back_within_its_rounding(size):
    read = parse_size(format_size(size).replace(" ", ""))
    assert abs(read - size) <= 0.05 * size
