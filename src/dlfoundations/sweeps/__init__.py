"""Multirun sweeps: collect job results, summary table and plot, local device pool."""

from dlfoundations.sweeps.summary import SweepSummary, collect, write_summary

__all__ = ["SweepSummary", "collect", "write_summary"]
