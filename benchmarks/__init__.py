"""Speed and memory measurements that print ratios against a baseline run in the same process.

Never part of the tests. Run one with ``python -m benchmarks.<name>`` from the repository root.
"""
