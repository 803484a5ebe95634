"""deploy/compose: Docker cannot run here, so the stack is checked against the real CLI, the config
model and the producer's preflight rules instead of being started."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import yaml

from producers.preflight import binlog_problems, privilege_problems
from schemas.config import PipelineConfig, load_config
from tests.support.consistency import ROOT, ParsedCommand, dockerfile_entrypoint, mysqld_variables, parse_cli

COMPOSE_DIR = ROOT / "deploy" / "compose"
COMPOSE = yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text())
SERVICES: dict[str, dict] = COMPOSE["services"]


def is_cdcsync(service: dict) -> bool:
    return "build" in service or str(service.get("image", "")).startswith("cdcsync:")


def argv_of(service: dict) -> list[str]:
    """What the container runs: the service's entrypoint, else the image's, then its command."""
    entrypoint = service.get("entrypoint") or dockerfile_entrypoint(
        (COMPOSE_DIR / service["build"]["context"] / service["build"]["dockerfile"]).resolve())
    return [*entrypoint, *service["command"]]


def binds(service: dict) -> dict[str, Path]:
    """Container path -> host path of the service's bind mounts (named volumes left out)."""
    result = {}
    for spec in service.get("volumes", []):
        source, target = spec.split(":")[:2]
        if source.startswith((".", "/")):
            result[target] = (COMPOSE_DIR / source).resolve()
    return result


def named_volumes(service: dict) -> dict[str, str]:
    """Container path -> volume name."""
    result = {}
    for spec in service.get("volumes", []):
        source, target = spec.split(":")[:2]
        if not source.startswith((".", "/")):
            result[target] = source
    return result


CDCSYNC_SERVICES = {name: s for name, s in SERVICES.items() if is_cdcsync(s)}


def parsed(name: str) -> ParsedCommand:
    service = CDCSYNC_SERVICES[name]
    argv = argv_of(service)
    assert argv[0] == "cdcsync", f"{name}: runs {argv[0]!r}, not cdcsync"
    return parse_cli(argv[1:], env={k: str(v) for k, v in (service.get("environment") or {}).items()})


def config_of(name: str) -> PipelineConfig:
    path = parsed(name).params["config"]
    mounts = binds(CDCSYNC_SERVICES[name])
    assert str(path) in mounts, f"{name}: --config {path} is not a file mounted into the container"
    return load_config(mounts[str(path)])


CONFIG = load_config(COMPOSE_DIR / "cdcsync.toml")


def components() -> dict[tuple[str, str], list[str]]:
    """(region, producer|db|cache) -> the services running that component."""
    result: dict[tuple[str, str], list[str]] = {}
    for name in CDCSYNC_SERVICES:
        command = parsed(name)
        if command.path == ("producer",):
            result.setdefault((command.params["region"], "producer"), []).append(name)
        elif command.path == ("consumer",):
            result.setdefault((command.params["region"], command.params["sink"]), []).append(name)
    return result


def service_at(host: str) -> dict:
    assert host in SERVICES, f"config names host {host!r}, which is no compose service"
    return SERVICES[host]


@pytest.mark.parametrize("name", sorted(CDCSYNC_SERVICES))
def test_every_cdcsync_command_is_accepted_by_the_cli(name) -> None:
    command = parsed(name)            # raises CommandLineError with the CLI's message
    config = config_of(name)
    if "region" in command.params and command.params["region"] is not None:
        assert command.params["region"] in config.regions
    if command.path == ("consumer",):
        assert command.params["sink"] in ("db", "cache")     # checked in the command's body, not by click
    assert command.params.get("log_format", "text") in ("text", "json")


def test_every_service_reads_the_stack_config() -> None:
    for name in CDCSYNC_SERVICES:
        assert config_of(name) == CONFIG, name


def test_each_region_has_exactly_one_producer_that_cannot_be_scaled() -> None:
    found = components()
    for region in CONFIG.regions:
        producers = found.get((region, "producer"), [])
        assert len(producers) == 1, f"region {region}: producers {producers}; exactly one may read a binlog"
        service = SERVICES[producers[0]]
        # a fixed container_name makes `docker compose up --scale` refuse to start a second one
        assert service.get("container_name"), f"{producers[0]} needs a container_name"
        assert "replicas" not in (service.get("deploy") or {})
        assert found.get((region, "db")) and found.get((region, "cache")), f"region {region} lacks a sink"


def test_the_producer_checkpoint_is_on_a_volume() -> None:
    for (region, kind), names in components().items():
        if kind != "producer":
            continue
        volumes = named_volumes(SERVICES[names[0]])
        checkpoint_dir = str(CONFIG.region(region).producer.checkpoint_dir)
        assert checkpoint_dir in volumes, f"{names[0]}: {checkpoint_dir} is not on a named volume"
        assert volumes[checkpoint_dir] in COMPOSE["volumes"]


@pytest.mark.parametrize("region", sorted(CONFIG.regions))
def test_mysql_service_matches_config_and_preflight(region) -> None:
    settings = CONFIG.region(region)
    mysql = service_at(settings.mysql.host)
    assert str(mysql["image"]).startswith("mysql:8.4")
    assert settings.mysql.flavor == "mysql"
    variables = mysqld_variables(mysql["command"])
    assert variables.get("port", "3306") == str(settings.mysql.port)
    assert int(variables["server_id"]) == settings.server_id
    assert binlog_problems(variables, "mysql") == []
    assert variables.get("gtid_mode") == "ON" and variables.get("enforce_gtid_consistency") == "ON"


def test_mysql_services_generate_distinct_auto_increment_ids() -> None:
    from producers.auto_increment import AutoIncrement, collisions

    settings = {}
    for name, region in CONFIG.regions.items():
        variables = mysqld_variables(service_at(region.mysql.host)["command"])
        settings[name] = AutoIncrement(int(variables.get("auto_increment_increment", 1)),
                                       int(variables.get("auto_increment_offset", 1)))
    assert collisions(settings, len(CONFIG.regions)) == []


@pytest.mark.parametrize("region", sorted(CONFIG.regions))
def test_mysql_init_creates_the_configured_user_with_the_reader_grants(region) -> None:
    settings = CONFIG.region(region)
    mounts = binds(service_at(settings.mysql.host))
    sql = mounts["/docker-entrypoint-initdb.d/01-cdcsync.sql"].read_text()
    user = settings.mysql.user
    created = re.search(rf"CREATE USER IF NOT EXISTS '{user}'@'%' IDENTIFIED BY '([^']*)'", sql)
    assert created and created.group(1) == settings.mysql.password.get_secret_value()
    grants = [line for line in sql.splitlines() if line.startswith("GRANT ")]
    schemas = sorted({p.split(".")[0] for p in settings.producer.include})
    assert privilege_problems(grants, schemas) == []
    for schema in schemas:
        assert re.search(rf"CREATE (DATABASE|TABLE) IF NOT EXISTS {schema}\b", sql)
    assert any("INSERT" in g and f" ON {CONFIG.meta_db}.*" in g for g in grants), "the applier writes meta_db"


@pytest.mark.parametrize("region", sorted(CONFIG.regions))
def test_redis_and_kafka_services_match_config(region) -> None:
    settings = CONFIG.region(region)
    redis = service_at(settings.redis.host)
    assert str(redis["image"]).startswith("redis:")
    command = redis.get("command", [])
    port = command[command.index("--port") + 1] if "--port" in command else "6379"
    assert int(port) == settings.redis.port

    for address in CONFIG.kafka_for(region).bootstrap.split(","):
        host, port = address.rsplit(":", 1)
        kafka = service_at(host)
        assert str(kafka["image"]).startswith("apache/kafka:")
        env = kafka["environment"]
        assert f"PLAINTEXT://{host}:{port}" in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
        assert "broker" in env["KAFKA_PROCESS_ROLES"] and "controller" in env["KAFKA_PROCESS_ROLES"]  # KRaft
        assert str(env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"]).lower() == "false"
        assert CONFIG.kafka_for(region).replication_factor <= 1   # one broker per region here


def kafka_service(bootstrap: str) -> str:
    return bootstrap.split(",")[0].rsplit(":", 1)[0]


def test_services_wait_for_what_they_connect_to() -> None:
    for (region, kind), names in components().items():
        settings = CONFIG.region(region)
        needed = {kafka_service(CONFIG.kafka_for(region).bootstrap), "init"}
        if kind in ("producer", "db"):
            needed.add(settings.mysql.host)
        if kind == "db":
            needed |= {kafka_service(CONFIG.source_kafka_for(region, s).bootstrap) for s in CONFIG.sources_of(region)}
        if kind == "cache":
            needed.add(settings.redis.host)
        for name in names:
            depends = SERVICES[name].get("depends_on") or {}
            assert needed <= set(depends), f"{name} does not wait for {sorted(needed - set(depends))}"


def test_init_runs_cdcsync_init_before_the_pipeline() -> None:
    assert parsed("init").path == ("init",)
    assert SERVICES["init"]["restart"] == "no"
    for name, service in CDCSYNC_SERVICES.items():
        if parsed(name).path in (("producer",), ("consumer",)):
            assert service["depends_on"]["init"]["condition"] == "service_completed_successfully"


def test_the_cli_service_can_run_verify_and_status() -> None:
    assert argv_of(SERVICES["cli"])[0] == "cdcsync"
    config = str(parsed("cli").params["config"])
    assert parse_cli(["verify", "--config", config]).path == ("verify",)    # docs/deployment/production.md's command
    volumes = named_volumes(SERVICES["cli"])
    for region in CONFIG.regions.values():                # status reads the producers' checkpoints
        assert str(region.producer.checkpoint_dir) in volumes


def test_prometheus_scrapes_every_component_on_its_configured_port() -> None:
    prometheus = SERVICES["prometheus"]
    mounts = binds(prometheus)
    scrape = yaml.safe_load(mounts["/etc/prometheus/prometheus.yml"].read_text())
    assert "/etc/prometheus/alerts.yml" in scrape["rule_files"]
    assert mounts["/etc/prometheus/alerts.yml"] == ROOT / "deploy" / "prometheus" / "alerts.yml"
    targets: dict[str, set[str]] = {}
    for job in scrape["scrape_configs"]:
        for static in job.get("static_configs", []):
            for target in static["targets"]:
                targets.setdefault(target, set()).add(static["labels"]["component"])
        for dns in job.get("dns_sd_configs", []):
            component = next(r["replacement"] for r in job["relabel_configs"] if r["target_label"] == "component")
            for host in dns["names"]:
                targets.setdefault(f"{host}:{dns['port']}", set()).add(component)
    for (region, kind), names in components().items():
        settings = CONFIG.region(region)
        for name in names:
            flag = parsed(name).params.get("metrics_port")
            port = flag if flag is not None else settings.metrics_port if kind == "producer" \
                else settings.sink.metrics_port
            assert port, f"{name} serves no metrics"
            expected = {"producer": "producer", "db": "db-sink", "cache": "cache-sink"}[kind]
            assert targets.get(f"{name}:{port}") == {expected}, f"{name}:{port} is not scraped as {expected}"


def test_grafana_loads_the_shipped_dashboard() -> None:
    mounts = binds(SERVICES["grafana"])
    dashboards = [p for p in mounts.values() if p.suffix == ".json"]
    assert dashboards == [ROOT / "deploy" / "grafana" / "cdcsync-dashboard.json"]
    provider = yaml.safe_load(next(p for t, p in mounts.items() if "provisioning/dashboards" in t).read_text())
    folder = provider["providers"][0]["options"]["path"]
    assert any(t.startswith(folder + "/") for t, p in mounts.items() if p.suffix == ".json")


def test_every_bind_mount_exists() -> None:
    for name, service in SERVICES.items():
        for target, source in binds(service).items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) does not exist"


def test_dockerfile_copies_every_package_the_project_installs() -> None:
    dockerfile = COMPOSE_DIR / "Dockerfile"
    assert dockerfile_entrypoint(dockerfile) == ["cdcsync"]
    for service in CDCSYNC_SERVICES.values():
        assert (COMPOSE_DIR / service["build"]["context"] / service["build"]["dockerfile"]).resolve() == dockerfile
    copied = set()
    for line in dockerfile.read_text().splitlines():
        if line.startswith("COPY ") and "--from=" not in line:
            *sources, _ = line.split()[1:]
            for source in sources:
                assert (ROOT / source).exists(), f"Dockerfile copies {source}, which does not exist"
                copied.add(source)
    ignore = (COMPOSE_DIR / "Dockerfile.dockerignore").read_text().splitlines()
    assert "*" in ignore, "the build context should hold only what the image needs"
    assert {f"!{source}" for source in copied} <= set(ignore), "the .dockerignore hides a copied path"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    for pattern in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]:
        assert pattern.rstrip("*") in copied, f"the image would lack the package {pattern}"
