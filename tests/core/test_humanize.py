"""srht_core.human_size: one way to show a size, on pages and in commands."""

from __future__ import annotations

import pytest

from srht_core import human_size


@pytest.mark.parametrize(
    ("size", "shown"),
    [
        (None, ""),
        (0, "0 bytes"),
        (1, "1 byte"),
        (1023, "1023 bytes"),
        (1024, "1 KiB"),
        (1536, "1.5 KiB"),
        (50 * 2**20, "50 MiB"),
        (3 * 2**30 + 2**29, "3.5 GiB"),
        (2**50, "1024 TiB"),
    ],
)
def test_sizes_in_binary_units(size: int | None, shown: str) -> None:
    assert human_size(size) == shown
