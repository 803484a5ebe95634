"""deploy/k8s: no cluster here, so the manifests are checked against the real CLI and the config
model: commands, the producer's single replica and Recreate strategy, probes and scrape ports equal
to the config's metrics ports, the ConfigMap's TOML, the Secret's keys, the disruption budgets."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from schemas.config import PipelineConfig, load_config
from tests.support.consistency import ROOT, ParsedCommand, dockerfile_entrypoint, env_setting_exists, parse_cli

K8S = ROOT / "deploy" / "k8s"
KUSTOMIZATION = yaml.safe_load((K8S / "kustomization.yaml").read_text())
DOCS = [doc for name in KUSTOMIZATION["resources"] for doc in yaml.safe_load_all((K8S / name).read_text()) if doc]
ENTRYPOINT = dockerfile_entrypoint(ROOT / "deploy" / "compose" / "Dockerfile")


def of_kind(kind: str) -> list[dict]:
    return [d for d in DOCS if d["kind"] == kind]


def named(kind: str, name: str) -> dict:
    matches = [d for d in of_kind(kind) if d["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


WORKLOADS = of_kind("Deployment") + of_kind("Job")


def cdcsync_containers(workload: dict) -> list[dict]:
    return [c for c in workload["spec"]["template"]["spec"]["containers"] if c["image"].startswith("cdcsync:")]


def container_env(container: dict) -> dict[str, str]:
    """The container's environment with every reference resolved from the manifests."""
    env = {}
    for var in container.get("env", []):
        if "value" in var:
            env[var["name"]] = str(var["value"])
            continue
        ref = var["valueFrom"].get("secretKeyRef") or var["valueFrom"]["configMapKeyRef"]
        kind = "Secret" if "secretKeyRef" in var["valueFrom"] else "ConfigMap"
        source = named(kind, ref["name"])
        data = source.get("stringData") or source.get("data") or {}
        assert ref["key"] in data, f"{var['name']}: {kind} {ref['name']} has no key {ref['key']!r}"
        env[var["name"]] = data[ref["key"]]
    return env


def parsed(container: dict) -> ParsedCommand:
    argv = [*(container.get("command") or ENTRYPOINT), *container.get("args", [])]
    assert argv[0] == "cdcsync"
    return parse_cli(argv[1:], env=container_env(container))


def mounted_config(workload: dict, container: dict, path: Path, tmp_path: Path) -> PipelineConfig:
    """Load the file at `path` inside the container from the ConfigMap volume mounted there."""
    volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}
    for mount in container["volumeMounts"]:
        if path.parent == Path(mount["mountPath"]) and "configMap" in volumes[mount["name"]]:
            configmap = named("ConfigMap", volumes[mount["name"]]["configMap"]["name"])
            assert path.name in configmap["data"], f"ConfigMap has no {path.name}"
            file = tmp_path / path.name
            file.write_text(configmap["data"][path.name])
            return load_config(file)
    raise AssertionError(f"{workload['metadata']['name']}: nothing mounts a ConfigMap at {path.parent}")


def component(command: ParsedCommand) -> str:
    return "producer" if command.path == ("producer",) else f"{command.params.get('sink')}-sink" \
        if command.path == ("consumer",) else command.path[0]


CASES = [(w, c) for w in WORKLOADS for c in cdcsync_containers(w)]
IDS = [f"{w['metadata']['name']}/{c['name']}" for w, c in CASES]


def test_every_manifest_is_listed_in_the_kustomization() -> None:
    files = sorted(p.name for p in K8S.glob("*.yaml") if p.name != "kustomization.yaml")
    assert sorted(KUSTOMIZATION["resources"]) == files
    assert all(d["metadata"].get("namespace", KUSTOMIZATION["namespace"]) == KUSTOMIZATION["namespace"] for d in DOCS)


@pytest.mark.parametrize("workload, container", CASES, ids=IDS)
def test_command_is_accepted_by_the_cli_and_config_loads(workload, container, tmp_path) -> None:
    command = parsed(container)
    config = mounted_config(workload, container, Path(command.params["config"]), tmp_path)
    region = command.params.get("region")
    assert region in config.regions
    if command.path == ("consumer",):
        assert command.params["sink"] in ("db", "cache")
    if workload["kind"] == "Deployment":
        assert workload["metadata"]["labels"]["cdcsync.io/region"] == region
    for variable in container_env(container):
        if variable.startswith("CDCSYNC_") and "__" in variable:
            assert env_setting_exists(config, variable), f"{variable} names no setting of the config"
            assert variable.startswith(f"CDCSYNC_REGIONS__{region.upper()}__"), \
                f"{variable}: a {region} pod gets another region's credentials"


@pytest.mark.parametrize("workload, container", [(w, c) for w, c in CASES if w["kind"] == "Deployment"],
                         ids=[i for i, (w, _) in zip(IDS, CASES) if w["kind"] == "Deployment"])
def test_probes_and_scrape_annotations_use_the_configured_metrics_port(workload, container, tmp_path) -> None:
    command = parsed(container)
    config = mounted_config(workload, container, Path(command.params["config"]), tmp_path)
    region = config.region(command.params["region"])
    expected = command.params.get("metrics_port") or (
        region.metrics_port if command.path == ("producer",) else region.sink.metrics_port)
    assert expected, "a long-running component must serve metrics and probes"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}

    def port(ref: int | str) -> int:
        return ports[ref] if isinstance(ref, str) else ref

    assert port(container["livenessProbe"]["httpGet"]["port"]) == expected
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert port(container["readinessProbe"]["httpGet"]["port"]) == expected
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    annotations = workload["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == expected
    assert annotations["prometheus.io/path"] == "/metrics"
    # the alert rules select targets by `component`
    assert workload["spec"]["template"]["metadata"]["labels"]["component"] == component(command)


@pytest.mark.parametrize("workload, container", CASES, ids=IDS)
def test_resources_are_requested(workload, container) -> None:
    requests = container["resources"]["requests"]
    assert requests.get("cpu") and requests.get("memory")


def deployments_by_component() -> dict[tuple[str, str], list[dict]]:
    found: dict[tuple[str, str], list[dict]] = {}
    for workload in of_kind("Deployment"):
        for container in cdcsync_containers(workload):
            command = parsed(container)
            found.setdefault((command.params["region"], component(command)), []).append(workload)
    return found


def test_the_producer_is_one_replica_recreated_never_rolled() -> None:
    found = deployments_by_component()
    producers = [(r, ws) for (r, kind), ws in found.items() if kind == "producer"]
    assert producers, "no producer Deployment"
    for region, workloads in producers:
        assert len(workloads) == 1, f"{region}: {len(workloads)} producer Deployments; two would read one binlog"
        spec = workloads[0]["spec"]
        assert spec["replicas"] == 1
        assert spec["strategy"]["type"] == "Recreate"
        for autoscaler in of_kind("HorizontalPodAutoscaler"):
            assert autoscaler["spec"]["scaleTargetRef"]["name"] != workloads[0]["metadata"]["name"]
        # a budget on one replica cannot keep it up through a drain, it can only block the drain
        assert not [p for p in of_kind("PodDisruptionBudget") if _selects(p["spec"]["selector"]["matchLabels"],
                                                                          workloads[0])]


def _selects(match_labels: dict, workload: dict) -> bool:
    labels = workload["spec"]["template"]["metadata"]["labels"]
    return all(labels.get(k) == v for k, v in match_labels.items())


def test_the_producer_checkpoint_is_on_a_persistent_volume(tmp_path) -> None:
    for (region, kind), workloads in deployments_by_component().items():
        if kind != "producer":
            continue
        workload = workloads[0]
        container = cdcsync_containers(workload)[0]
        config = mounted_config(workload, container, Path(parsed(container).params["config"]), tmp_path)
        volumes = {v["name"]: v for v in workload["spec"]["template"]["spec"]["volumes"]}
        mount = next(m for m in container["volumeMounts"]
                     if m["mountPath"] == str(config.region(region).producer.checkpoint_dir))
        claim = volumes[mount["name"]]["persistentVolumeClaim"]["claimName"]
        pvc = named("PersistentVolumeClaim", claim)
        assert pvc["spec"]["accessModes"] == ["ReadWriteOnce"]


def test_sinks_scale_as_consumer_group_members_with_a_disruption_budget(tmp_path) -> None:
    found = deployments_by_component()
    for (region, kind), workloads in found.items():
        if not kind.endswith("-sink"):
            continue
        assert len(workloads) == 1
        workload = workloads[0]
        container = cdcsync_containers(workload)[0]
        config = mounted_config(workload, container, Path(parsed(container).params["config"]), tmp_path)
        replicas = workload["spec"]["replicas"]
        assert 2 <= replicas <= config.kafka_for(region).partitions, \
            f"{workload['metadata']['name']}: {replicas} replicas; 2 to the partition count make sense"
        assert workload["spec"]["strategy"]["type"] == "RollingUpdate"
        budgets = [p for p in of_kind("PodDisruptionBudget")
                   if _selects(p["spec"]["selector"]["matchLabels"], workload)]
        assert len(budgets) == 1, f"{workload['metadata']['name']}: {len(budgets)} PodDisruptionBudgets"
        assert budgets[0]["spec"].get("maxUnavailable") == 1 or budgets[0]["spec"].get("minAvailable")
    assert {kind for _, kind in found} >= {"producer", "db-sink", "cache-sink"}


def test_deployment_selectors_match_their_pods() -> None:
    for workload in of_kind("Deployment"):
        assert _selects(workload["spec"]["selector"]["matchLabels"], workload)


def test_the_init_job_runs_cdcsync_init() -> None:
    jobs = [parsed(c) for j in of_kind("Job") for c in cdcsync_containers(j)]
    assert [j.path for j in jobs] == [("init",)]


def test_pods_run_unprivileged_without_an_api_token() -> None:
    account = named("ServiceAccount", "cdcsync")
    assert account["automountServiceAccountToken"] is False
    for workload in WORKLOADS:
        pod = workload["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == "cdcsync"
        assert pod["securityContext"]["runAsNonRoot"] is True


def test_the_configmap_holds_no_secret_and_the_secret_only_placeholders(tmp_path) -> None:
    configmap = named("ConfigMap", "cdcsync-config")
    file = tmp_path / "c.toml"
    file.write_text(configmap["data"]["cdcsync.toml"])
    config = load_config(file)
    for region in config.regions.values():
        assert region.mysql.password.get_secret_value() == "", f"{region.name}: a password in the ConfigMap"
        assert region.redis.password is None
    secret = named("Secret", "cdcsync-secrets")
    assert set(secret["stringData"].values()) == {"change-me"}
