"""Multirun sweeps: collect job results, summary table and plot, local device pool."""

from dlfoundations.sweeps.callback import SweepSummary
from dlfoundations.sweeps.collect import collect
from dlfoundations.sweeps.summary import write_summary

__all__ = ["SweepSummary", "collect", "write_summary"]
