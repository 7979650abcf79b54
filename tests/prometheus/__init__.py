"""Prometheus rules, Grafana dashboards and their queries against a real Prometheus."""
