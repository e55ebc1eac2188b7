"""Memory sizes as people write them (`512MiB`, `2GiB`) and as messages show them.

Binary units only mean what they say: `MiB` is 2**20 bytes. Decimal units
(`MB`, `GB`) are accepted too and mean powers of 1000, as in `ls --si`; a
bare number is bytes.
"""

from __future__ import annotations

import re

_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "k": 1024,
    "kib": 1024,
    "m": 1024**2,
    "mib": 1024**2,
    "g": 1024**3,
    "gib": 1024**3,
    "t": 1024**4,
    "tib": 1024**4,
}
_SIZE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([A-Za-z]*)\s*")
_SHOWN = (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024))


def parse_size(text: str) -> int:
    """Bytes in `text` (`512MiB`, `2GiB`, `1.5G`, `1000000`); ValueError says what is wrong."""
    match = _SIZE.fullmatch(text)
    unit = match and _UNITS.get(match.group(2).lower())
    if match is None or unit is None:
        raise ValueError(f"{text!r} is not a size: write a number and a unit, as 512MiB or 2GiB")
    return int(float(match.group(1)) * unit)


def format_size(size: int) -> str:
    """`size` bytes in the largest binary unit it reaches, to one decimal: `3.8 MiB`."""
    for unit, scale in _SHOWN:
        if abs(size) >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"
