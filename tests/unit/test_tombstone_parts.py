"""Pure parts of the tombstone purge: durations, key texts split back, clock identity, candidates."""

from __future__ import annotations

import pytest

from cdcsync.commands.tombstones import parse_duration
from cdcsync.tools.tombstones import PurgeRefused, candidates, clock_of, purge
from schemas.config import parse_config
from schemas.row_clock_key import row_clock_key, split_key


@pytest.mark.parametrize("text, seconds", [("0s", 0), ("90", 90), ("15m", 900), ("12h", 43200), ("7d", 604800),
                                           ("2w", 1209600), ("1.5h", 5400), (" 3D ", 259200)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "7 days", "-1s", "1y", "h"])
def test_bad_durations_are_named(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(text)


@pytest.mark.parametrize("pk, types", [
    ({"id": 42}, {"id": "int"}),
    ({"a": "x:1,2:yz", "b": -7}, {"a": "varchar(20)", "b": "bigint"}),
    ({"a": "", "b": "é,:"}, {"a": "varchar(3)", "b": "char(4)"}),
])
def test_split_key_inverts_the_key_text(pk, types) -> None:
    assert split_key(row_clock_key(pk, types)) == [str(v) for v in pk.values()]


@pytest.mark.parametrize("text", ["", "2:4", "x:1", "1:a;1:b", "1:a,", ":a"])
def test_split_key_refuses_what_is_not_a_key(text: str) -> None:
    with pytest.raises(ValueError, match="not a canonical key"):
        split_key(text)


def test_clock_identity_ignores_json_formatting_and_zero_entries() -> None:
    assert clock_of('{"eu": 2, "us": 1}', 5) == clock_of('{"us":1,"ap":0,"eu":2}', 5)
    assert clock_of('{"eu": 2}', 5) != clock_of('{"eu": 2}', 6)
    assert clock_of('{"eu": 2}', 5) != clock_of('{"eu": 3}', 5)


def test_candidates_need_every_region_identical_and_old() -> None:
    same = ("2:10", clock_of('{"eu": 1}', 9), True)
    eu = {("d", "t", b"1"): same, ("d", "t", b"2"): same, ("d", "t", b"3"): same, ("d", "t", b"4"): same}
    us = {("d", "t", b"1"): same, ("d", "t", b"2"): ("2:10", clock_of('{"eu": 1}', 10), True),
          ("d", "t", b"3"): ("2:10", clock_of('{"eu": 1}', 9), False)}
    assert candidates([eu, us]) == {("d", "t", b"1"): ("2:10", clock_of('{"eu": 1}', 9))}


def _run(tmp_path, monkeypatch, *args: str, min_age_config: int | None = None):
    from typer.testing import CliRunner

    from cdcsync.cli import app
    from cdcsync.tools import tombstones

    extra = "" if min_age_config is None else f"tombstone_min_age_s = {min_age_config}\n"
    path = tmp_path / "c.toml"
    path.write_text(extra + "[regions.eu]\nserver_id = 1\n[regions.us]\nserver_id = 2\n")
    calls = []

    def fake_purge(config, **kw):
        calls.append(kw)
        if kw["table"] == ("d", "lagging"):
            raise tombstones.PurgeRefused("refusing to purge tombstones: x.us.db: 3 change(s) not applied yet")
        if kw["table"] == ("d", "partial"):
            raise tombstones.PartialPurge("d.partial: purge committed in eu but failed in another region (gone)")
        return tombstones.PurgeReport(dry_run=kw["dry_run"], min_age_s=kw["min_age_s"],
                                      tables=[tombstones.TablePurge("d", "t", tombstones=3, candidates=2, purged=2)])

    monkeypatch.setattr(tombstones, "purge", fake_purge)
    result = CliRunner().invoke(app, ["tombstones", "purge", "--config", str(path), *args])
    return result, calls


def test_cli_min_age_defaults_to_the_config_and_parses_durations(tmp_path, monkeypatch) -> None:
    result, calls = _run(tmp_path, monkeypatch, min_age_config=90000)
    assert result.exit_code == 0 and calls[0]["min_age_s"] == 90000 and calls[0]["table"] is None
    assert "d.t: 3 tombstones, 2 seen everywhere, purged 2, kept 1" in result.output
    result, calls = _run(tmp_path, monkeypatch, "--min-age", "2h", "--table", "d.t", "--dry-run")
    assert calls[0]["min_age_s"] == 7200 and calls[0]["table"] == ("d", "t") and calls[0]["dry_run"] is True
    assert "would purge 2" in result.output
    result, calls = _run(tmp_path, monkeypatch)
    assert calls[0]["min_age_s"] == 604800   # the documented default: 7 days


@pytest.mark.parametrize("args, code, message", [
    (["--min-age", "soon"], 2, "--min-age: not a duration: 'soon'"),
    (["--table", "nodot"], 2, "--table: expected `db.table`, got 'nodot'"),
    (["--table", "d.lagging"], 1, "x.us.db: 3 change(s) not applied yet"),
    (["--table", "d.partial"], 1, "tombstone purge stopped: d.partial: purge committed in eu but failed"),
])
def test_cli_refusals_are_named(tmp_path, monkeypatch, args, code, message) -> None:
    result, _ = _run(tmp_path, monkeypatch, *args)
    assert result.exit_code == code
    assert message in " ".join(result.output.split())


def test_a_min_age_below_the_cache_tombstone_ttl_is_refused_before_any_connection() -> None:
    # No server at these ports: the refusal must come first, with the fix.
    config = parse_config({"regions": {"eu": {"server_id": 1, "mysql": {"port": 1}}}, "cache_tombstone_ttl_s": 3600})
    with pytest.raises(PurgeRefused, match=r"--min-age 600s is shorter than cache_tombstone_ttl_s \(3600s\).*"
                                           r"use --min-age 3600s or more"):
        purge(config, min_age_s=600)
