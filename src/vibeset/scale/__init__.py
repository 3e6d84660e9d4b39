"""Running at scale: the catalog shards, one Ray session, worker processes, and bulk labelling."""

from .session import process_pool, ray_session

__all__ = ["process_pool", "ray_session"]
