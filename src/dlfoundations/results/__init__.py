"""After the jobs: one table of the records, aggregates over seeds, figures, threshold, report.

Reads run records only (dlfoundations.record)."""

from dlfoundations.results.summary import write_summary

__all__ = ["write_summary"]
