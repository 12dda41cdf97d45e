"""Observability: the Prometheus metrics of every long-running process, /metrics and /healthz."""
