"""Numbers as people read them, the same on every page and in every command."""

from __future__ import annotations

__all__ = ["human_size"]

_UNITS = ("KiB", "MiB", "GiB", "TiB")


def human_size(size: int | None) -> str:
    """A size in bytes, in binary units: ``1 byte``, ``900 bytes``,
    ``1.5 KiB``, ``2 MiB`` (one decimal, dropped when it is 0); ``""`` for
    ``None`` (a size not known)."""
    if size is None:
        return ""
    if abs(size) < 1024:
        return f"{size} byte" + ("" if size == 1 else "s")
    value = float(size)
    for unit in _UNITS:
        value /= 1024
        if abs(value) < 1024 or unit == _UNITS[-1]:
            break
    return f"{value:.1f}".removesuffix(".0") + f" {unit}"
