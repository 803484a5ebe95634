"""deploy/mirrormaker: the MirrorMaker 2 files for `cross_region_reads = "local_cluster"` mirror
exactly what each region's database sink subscribes to, under the same names, and never a region's
own topics back into its cluster."""

from __future__ import annotations

import re
import tomllib

import pytest
import yaml

from schemas.config import PipelineConfig, parse_config
from schemas.topics import TopicNames
from tests.support.consistency import ROOT

MM2 = ROOT / "deploy" / "mirrormaker"


def k8s_config() -> PipelineConfig:
    docs = yaml.safe_load_all((ROOT / "deploy" / "k8s" / "configmap.yaml").read_text())
    configmap = next(d for d in docs if d and d["kind"] == "ConfigMap")
    data = tomllib.loads(configmap["data"]["cdcsync.toml"])
    return parse_config({**data, "cross_region_reads": "local_cluster"})


CONFIG = k8s_config()


def properties(text: str) -> dict[str, str]:
    """A Java .properties file: `key = value`, `#` comments, backslash escapes (`\\\\` is one `\\`)."""
    result = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", "!")):
            continue
        key, _, value = line.partition("=")
        result[key.strip()] = re.sub(r"\\(.)", r"\1", value.strip())
    return result


def topics_of(region: str, names: TopicNames) -> dict[str, str]:
    return {"change": names.changes(region, "shop", "items"), "schema": names.schema(region), "dlq": names.dlq(region)}


def mirrored(props: dict[str, str], flow: str, topic: str) -> bool:
    """MirrorMaker's topic filter: a full match of one `topics` pattern and of no `topics.exclude` pattern."""
    include = [p.strip() for p in props[f"{flow}.topics"].split(",")]
    exclude = [p.strip() for p in props.get("topics.exclude", "").split(",") if p.strip()]
    return any(re.fullmatch(p, topic) for p in include) and not any(re.fullmatch(p, topic) for p in exclude)


@pytest.mark.parametrize("region", sorted(CONFIG.regions))
def test_each_region_mirrors_what_its_database_sink_reads(region) -> None:
    props = properties((MM2 / f"mm2-{region}.properties").read_text())
    names = TopicNames.of(CONFIG)
    assert props["replication.policy.class"] == "org.apache.kafka.connect.mirror.IdentityReplicationPolicy"
    assert props[f"{region}.bootstrap.servers"] == CONFIG.kafka_for(region).bootstrap
    enabled = [k.removesuffix(".enabled") for k, v in props.items() if k.endswith(".enabled") and "->" in k
               and v == "true"]
    sources = CONFIG.sources_of(region)
    assert sorted(enabled) == sorted(f"{s}->{region}" for s in sources)
    for source in sources:
        flow = f"{source}->{region}"
        assert props[f"{source}.bootstrap.servers"] == CONFIG.kafka_for(source).bootstrap
        # with local_cluster the sink reads the source's topics from its own cluster...
        assert CONFIG.source_kafka_for(region, source) == CONFIG.kafka_for(region)
        own = topics_of(source, names)
        assert mirrored(props, flow, own["change"]) and mirrored(props, flow, own["schema"])
        # ...under the name its subscription expects (so `origin` filtering sees the same source region)
        assert re.fullmatch(names.change_subscription(source).strip("^$"), own["change"])
        assert not mirrored(props, flow, own["dlq"]), "dead letters stay in their region"
        # never the target's own topics back into it, nor a third region's
        for other in CONFIG.regions:
            if other != source:
                assert not any(mirrored(props, flow, t) for t in topics_of(other, names).values()), \
                    f"{flow} would mirror {other}'s topics"


def test_properties_unescape_like_java() -> None:
    assert properties("a = x\\\\.y\\\\..*\n# c = d\nb=1") == {"a": "x\\.y\\..*", "b": "1"}
