"""Readable log axes for every figure the project draws: plain numbers (500, 1k, 2k) at 1, 2
and 5 times a power of ten where the axis spans few decades, matplotlib's powers of ten where it
spans many (a label per 1-2-5 step would crowd them)."""

from typing import Any

DECADES_FOR_PLAIN_LABELS = 3.5


def _plain(value: float, _: Any = None) -> str:
    """500, 1k, 20k, 1M: short enough that 1-2-5 labels over three decades do not touch."""
    for scale, suffix in ((1e6, "M"), (1e3, "k")):
        if value >= scale:
            return f"{value / scale:g}{suffix}"
    return f"{value:g}"


def log_ticks(axis: Any) -> None:
    """Plain 1-2-5 labels on a log ``axis`` (``ax.xaxis`` / ``ax.yaxis``) spanning few decades."""
    import math

    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    low, high = sorted(axis.get_view_interval())
    if low <= 0 or high <= 0 or math.log10(high / low) > DECADES_FOR_PLAIN_LABELS:
        return
    axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    axis.set_major_formatter(FuncFormatter(_plain))
    axis.set_minor_formatter(NullFormatter())
