"""`cdcsync region add` refusals decided from the config alone, before any server is contacted
(the hosts below do not exist: reaching one would fail with another error)."""

from __future__ import annotations

import pytest

from cdcsync.tools.regions.add import RegionAddError, check_preconditions
from cdcsync.tools.regions.offsets import record_start_offsets
from schemas.config import parse_config

NOWHERE = {"host": "192.0.2.1", "connect_timeout": 0.5}   # TEST-NET-1: never answers


def config(**top):
    regions = {"eu": {"server_id": 1, "mysql": NOWHERE}, "us": {"server_id": 2, "mysql": NOWHERE},
               "ap": {"server_id": 3, "mysql": NOWHERE}}
    for name, extra in top.pop("regions", {}).items():
        regions[name] = {**regions[name], **extra}
    return parse_config({"kafka": {"bootstrap": "192.0.2.1:9092"}, "regions": regions, **top})


def test_refuses_an_unconfigured_region_a_seed_from_itself_and_an_unknown_seed() -> None:
    with pytest.raises(RegionAddError, match=r"region 'sa' is not in the config .*add \[regions\.sa\]"):
        check_preconditions(config(), "sa", "eu")
    with pytest.raises(RegionAddError, match="ap cannot be seeded from itself"):
        check_preconditions(config(), "ap", "ap")
    with pytest.raises(RegionAddError, match="seed region 'xx' is not in the config"):
        check_preconditions(config(), "ap", "xx")


def test_refuses_offsets_of_a_source_read_on_another_cluster() -> None:
    # MirrorMaker: eu and ap read us's topics from their own clusters, whose offsets differ.
    cfg = config(cross_region_reads="local_cluster",
                 regions={"eu": {"kafka": {"bootstrap": "192.0.2.10:9092"}},
                          "ap": {"kafka": {"bootstrap": "192.0.2.30:9092"}, "sources": ["us"]}})
    with pytest.raises(RegionAddError, match="offsets of one cluster mean nothing on another"):
        record_start_offsets(cfg, "ap", "eu", timeout_s=0.5)


def test_refuses_a_source_the_seed_does_not_apply() -> None:
    cfg = config(regions={"eu": {"sources": ["ap"]}, "ap": {"sources": ["us"]}})
    with pytest.raises(RegionAddError, match="region eu does not apply us's changes"):
        record_start_offsets(cfg, "ap", "eu", timeout_s=0.5)
