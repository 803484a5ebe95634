"""Local sandbox: real MariaDB, Redis and a Kafka-compatible broker on loopback, no Docker."""

from deploy.local.sandbox import Sandbox, SandboxError

__all__ = ["Sandbox", "SandboxError"]
