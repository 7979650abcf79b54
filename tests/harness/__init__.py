"""Test helpers shared across the suite: waiting for a condition, free ports, HTTP probes, a
`replyclock run` subprocess, realistic support mailboxes, and store comparisons.

Tests import these by name (``from harness import wait_for``): ``tests/`` is on ``sys.path``.
"""

from harness.probes import free_port, http_get, metric_samples, wait_for

__all__ = ["free_port", "http_get", "metric_samples", "wait_for"]
