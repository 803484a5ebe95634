"""Deployment: the local sandbox (`deploy.local`, real servers on loopback, no Docker) and the
deployment files (compose, Kubernetes, systemd, MirrorMaker, Prometheus, Grafana). Imports nothing
of the pipeline's packages."""

__all__ = ["local"]
