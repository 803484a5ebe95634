"""deploy/systemd: the unit files run commands the real CLI accepts, for every region of the example
config, with the checkpoint in the producer's state directory and no two processes of one host on
one metrics port."""

from __future__ import annotations

from pathlib import Path

import pytest

from schemas.config import load_config
from tests.support.consistency import ROOT, ParsedCommand, env_setting_exists, parse_cli, split_command

SYSTEMD = ROOT / "deploy" / "systemd"
CONFIG = load_config(SYSTEMD / "cdcsync.toml")
UNITS = sorted(p for p in SYSTEMD.iterdir() if p.suffix in (".service", ".target"))


def unit(path: Path) -> dict[str, dict[str, list[str]]]:
    """Sections -> key -> values (systemd allows a key more than once)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, _, value = line.partition("=")
        assert current is not None, f"{path.name}: {line!r} outside a section"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def instantiate(text: str, instance: str) -> str:
    return text.replace("%i", instance).replace("%I", instance)


def environment(service: dict[str, list[str]]) -> dict[str, str]:
    env = {}
    for line in service.get("Environment", []):
        for assignment in split_command(line):
            key, _, value = assignment.partition("=")
            env[key] = value
    return env


def command(path: Path, region: str) -> ParsedCommand:
    service = unit(path)["Service"]
    (exec_start,) = service["ExecStart"]
    argv = split_command(instantiate(exec_start, region))
    assert Path(argv[0]).name == "cdcsync" and Path(argv[0]).is_absolute(), f"{path.name}: runs {argv[0]}"
    return parse_cli(argv[1:], env=environment(service))


SERVICES = [p for p in UNITS if p.suffix == ".service"]


@pytest.mark.parametrize("path", SERVICES, ids=[p.name for p in SERVICES])
@pytest.mark.parametrize("region", sorted(CONFIG.regions))
def test_every_unit_runs_a_command_the_cli_accepts_for_every_region(path, region) -> None:
    assert path.name.endswith("@.service"), f"{path.name}: a template, instantiated per region"
    parsed = command(path, region)
    assert parsed.params["region"] == region
    if parsed.path == ("consumer",):
        assert parsed.params["sink"] in ("db", "cache")           # checked in the command's body, not by click
    assert load_config(SYSTEMD / Path(parsed.params["config"]).name) == CONFIG   # the file shipped as the example
    assert parsed.params.get("log_format", "text") in ("text", "json")


def kind_of(path: Path) -> str:
    parsed = command(path, next(iter(CONFIG.regions)))
    return "producer" if parsed.path == ("producer",) else parsed.params["sink"] if parsed.path == ("consumer",) \
        else parsed.path[0]


def test_there_is_one_producer_template_and_a_sink_template_per_sink() -> None:
    kinds = sorted(kind_of(p) for p in SERVICES)
    assert kinds == ["cache", "db", "init", "producer"]


@pytest.mark.parametrize("path", SERVICES, ids=[p.name for p in SERVICES])
def test_long_running_units_stop_cleanly_and_do_not_restart_on_a_bad_config(path) -> None:
    service = unit(path)["Service"]
    if kind_of(path) == "init":
        assert service["Type"] == ["oneshot"]
        return
    assert service["Restart"] == ["on-failure"]
    assert "2" in service["RestartPreventExitStatus"][0].split()      # load() exits 2 on a bad config
    assert service.get("KillSignal", ["SIGTERM"]) == ["SIGTERM"]
    assert int(service["TimeoutStopSec"][0].removesuffix("s")) >= 30
    assert service["User"] != ["root"] and service["NoNewPrivileges"] == ["yes"]
    assert "-/etc/cdcsync/secrets.env" in service["EnvironmentFile"]
    assert unit(path)["Install"]["WantedBy"] == ["cdcsync-region@%i.target"]


def test_the_producer_checkpoint_is_its_state_directory() -> None:
    producer = next(p for p in SERVICES if kind_of(p) == "producer")
    state = unit(producer)["Service"]["StateDirectory"]
    for region in CONFIG.regions.values():
        assert Path("/var/lib") / state[0] == region.producer.checkpoint_dir


@pytest.mark.parametrize("region", sorted(CONFIG.regions))
def test_a_regions_processes_on_one_host_use_different_metrics_ports(region) -> None:
    settings = CONFIG.region(region)
    ports = {}
    for path in SERVICES:
        kind = kind_of(path)
        if kind == "init":
            continue
        parsed = command(path, region)
        configured = settings.metrics_port if kind == "producer" else settings.sink.metrics_port
        ports[kind] = parsed.params["metrics_port"] or configured
    assert all(ports.values()), f"a unit serves no metrics (no /healthz either): {ports}"
    assert len(set(ports.values())) == len(ports), f"port clash on one host: {ports}"


def test_units_start_after_init_and_belong_to_the_region_target() -> None:
    names = {p.name for p in UNITS}
    for path in SERVICES:
        if kind_of(path) == "init":
            continue
        section = unit(path)["Unit"]
        assert section["PartOf"] == ["cdcsync-region@%i.target"]
        if kind_of(path) in ("producer", "db"):
            assert "cdcsync-init@%i.service" in section["After"][0].split()
        for wanted in " ".join(section.get("Wants", [])).split():
            assert wanted.startswith("network") or wanted.replace("%i", "") in names, wanted
    assert "cdcsync-region@.target" in names


def test_the_secrets_example_names_real_settings() -> None:
    lines = [line for line in (SYSTEMD / "secrets.env.example").read_text().splitlines()
             if line and not line.startswith("#")]
    assert lines
    for line in lines:
        variable = line.partition("=")[0]
        assert env_setting_exists(CONFIG, variable), f"{variable} names no setting"
    # ...and the example config leaves those secrets out
    for region in CONFIG.regions.values():
        assert region.mysql.password.get_secret_value() == "" and region.redis.password is None
