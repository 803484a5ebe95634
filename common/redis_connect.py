"""Opening a region's Redis: the one place that turns a `RedisConfig` (TLS included) into a client."""

from __future__ import annotations

import redis

from common.redis_link import ReportingRetry
from schemas.config import RedisConfig

__all__ = ["redis_client"]


def redis_client(cfg: RedisConfig, *, report: bool = False) -> redis.Redis:
    """`report`: log a lost connection and the reconnection (common/redis_link.py)."""
    tls: dict[str, object] = {}
    if cfg.ssl:
        tls = {"ssl": True, "ssl_ca_certs": str(cfg.ssl_ca) if cfg.ssl_ca else None,
               "ssl_certfile": str(cfg.ssl_cert) if cfg.ssl_cert else None,
               "ssl_keyfile": str(cfg.ssl_key) if cfg.ssl_key else None}
    return redis.Redis(host=cfg.host, port=cfg.port, db=cfg.db, username=cfg.username,
                       password=cfg.password.get_secret_value() if cfg.password else None,
                       socket_timeout=10, socket_connect_timeout=10, **tls,
                       **({"retry": ReportingRetry(f"Redis {cfg.host}:{cfg.port}")} if report else {}))
