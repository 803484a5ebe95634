"""The AUTO_INCREMENT collision rule (producers/auto_increment.py): which settings let two regions
generate the same id. A brute force over the ids each region's server would generate checks the rule."""

from __future__ import annotations

import itertools

import pytest

from producers.auto_increment import AutoIncrement, collisions
from deploy.local.mariadb import MariaDBSpec, render_cnf


def generated(s: AutoIncrement, count: int = 60) -> set[int]:
    """The ids a server generates: offset + k * increment (the offset is ignored above the increment)."""
    offset = s.offset if s.offset <= s.increment else 1
    return {offset + k * s.increment for k in range(count)}


def test_distinct_offsets_under_one_increment_are_accepted() -> None:
    assert collisions({"eu": AutoIncrement(3, 1), "us": AutoIncrement(3, 2), "ap": AutoIncrement(3, 3)}, 3) == []
    assert collisions({"eu": AutoIncrement(10, 1), "us": AutoIncrement(10, 7)}, 2) == []   # room to add regions


def test_the_default_one_one_everywhere_is_refused() -> None:
    problems = collisions({"eu": AutoIncrement(1, 1), "us": AutoIncrement(1, 1)}, 2)
    assert any("region eu: auto_increment_increment = 1, fewer than the 2 regions" in p for p in problems)
    assert any("regions eu, us share auto_increment_offset = 1" in p for p in problems)


def test_each_kind_of_collision_is_named() -> None:
    assert collisions({"eu": AutoIncrement(2, 1), "us": AutoIncrement(2, 2), "ap": AutoIncrement(2, 1)}, 3) == [
        "region eu: auto_increment_increment = 2, fewer than the 3 regions, so two regions generate the same ids",
        "region us: auto_increment_increment = 2, fewer than the 3 regions, so two regions generate the same ids",
        "region ap: auto_increment_increment = 2, fewer than the 3 regions, so two regions generate the same ids",
        "regions eu, ap share auto_increment_offset = 1, so they generate the same ids"]
    problem, = collisions({"eu": AutoIncrement(3, 1), "us": AutoIncrement(4, 2)}, 2)
    assert "differs between regions (eu 3, us 4)" in problem
    problem, = collisions({"eu": AutoIncrement(3, 1), "us": AutoIncrement(3, 5)}, 2)
    assert "region us: auto_increment_offset = 5 is above" in problem


def test_one_region_or_unreachable_peers() -> None:
    assert collisions({"eu": AutoIncrement(1, 1)}, 1) == []
    # A peer that could not be read is not compared; the region's own increment still is.
    assert collisions({"eu": AutoIncrement(3, 1)}, 3) == []
    assert len(collisions({"eu": AutoIncrement(2, 1)}, 3)) == 1


@pytest.mark.parametrize("regions", [2, 3])
def test_the_rule_accepts_exactly_the_settings_whose_ids_never_meet(regions: int) -> None:
    choices = [AutoIncrement(i, o) for i in range(1, 5) for o in range(1, 6)]
    for combo in itertools.product(choices, repeat=regions):
        settings = {f"r{n}": s for n, s in enumerate(combo)}
        meet = any(generated(a) & generated(b) for a, b in itertools.combinations(combo, 2))
        if not collisions(settings, regions):
            assert not meet, settings            # accepted: never the same id


def test_sandbox_servers_get_their_own_offset(tmp_path) -> None:
    cnf = render_cnf(MariaDBSpec(home=tmp_path, port=1, server_id=2, gtid_domain_id=2,
                                 auto_increment_increment=3, auto_increment_offset=2))
    assert "auto_increment_increment = 3\n" in cnf and "auto_increment_offset = 2\n" in cnf
