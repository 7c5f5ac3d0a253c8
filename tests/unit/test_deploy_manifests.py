"""The Kubernetes base (deploy/kubernetes/base), checked offline.

Rendering: a plain loader of the files the kustomization lists (namespace, labels and images
applied as kustomize does), which refuses any kustomization field it does not implement. It is not
compared with `kubectl kustomize`: `make system-deps` installs no kubectl, because Debian's
kubernetes-client (1.20) embeds kustomize 2.0.3 (as kubectl 1.14 to 1.20 do), older than the
`labels` field this base uses, so the comparison could only skip or disagree; the schema checks
below run on what the loader renders.
Schemas: core Kubernetes kinds against the OpenAPI-derived JSON schemas that the kubernetes-validate
package ships (strict: unknown fields are errors), for the oldest and the newest Kubernetes this base
supports; Strimzi KafkaTopic and Prometheus Operator monitors against the small JSON schemas in
deploy/kubernetes/schemas/ (written from the CRD fields used). Then what the project needs of them:
every topic the services use exists with the configured partitions, compaction where the stack
compacts, replicas 3 and min.insync.replicas 2; probes, replicas, resources, non-root; selectors
that select; secrets by the documented names.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Dev dependencies (pyproject: kubernetes-validate brings PyYAML and jsonschema): missing is a failure.
import jsonschema
import kubernetes_validate
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BASE = REPO / "deploy" / "kubernetes" / "base"
SCHEMAS = REPO / "deploy" / "kubernetes" / "schemas"
# 1.28: the first release that labels StatefulSet pods with apps.kubernetes.io/pod-index (used for
# SCORER_WORKER_INDEX); the newest: whatever the vendored schemas go up to.
K8S_VERSIONS = ("1.28.0", kubernetes_validate.utils.latest_version())
CRD_SCHEMAS = {
    ("kafka.strimzi.io/v1beta2", "KafkaTopic"): "kafkatopic-kafka.strimzi.io-v1beta2.json",
    ("monitoring.coreos.com/v1", "PodMonitor"): "monitors-monitoring.coreos.com-v1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitors-monitoring.coreos.com-v1.json",
}


# ------------------------------------------------------------------------------------------ rendering


def load_base() -> list[dict[str, Any]]:
    """What `kustomize build` makes of the base, for the transformers the base uses."""
    kust = yaml.safe_load((BASE / "kustomization.yaml").read_text(encoding="utf-8"))
    known = {"apiVersion", "kind", "namespace", "labels", "resources", "images"}
    assert set(kust) <= known, f"the plain loader does not know {set(kust) - known}: extend it"
    docs: list[dict[str, Any]] = []
    for res in kust["resources"]:
        for doc in yaml.safe_load_all((BASE / res).read_text(encoding="utf-8")):
            if doc:
                docs.append(json.loads(json.dumps(doc)))  # YAML anchors share objects: unshare them
    images = {i["name"]: i for i in kust.get("images", [])}
    for doc in docs:
        if doc["kind"] != "Namespace":
            doc["metadata"]["namespace"] = kust["namespace"]
        for entry in kust.get("labels", []):
            doc["metadata"].setdefault("labels", {}).update(entry["pairs"])
            if entry.get("includeTemplates") and "template" in doc.get("spec", {}):
                doc["spec"]["template"]["metadata"].setdefault("labels", {}).update(entry["pairs"])
        for container in containers(doc):
            spec = images.get(container["image"])
            if spec:
                container["image"] = f"{spec.get('newName', container['image'])}:{spec['newTag']}"
    return docs


def containers(doc: dict[str, Any]) -> list[dict[str, Any]]:
    pod = doc.get("spec", {}).get("template", {}).get("spec", {})
    return [*pod.get("containers", []), *pod.get("initContainers", [])]


@pytest.fixture(scope="module")
def docs() -> list[dict[str, Any]]:
    return load_base()


def by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


# ------------------------------------------------------------------------------------------ schemas


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_core_kinds_match_the_kubernetes_schemas(docs: list[dict[str, Any]], version: str) -> None:
    problems = []
    checked = 0
    for doc in docs:
        if (doc["apiVersion"], doc["kind"]) in CRD_SCHEMAS:
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
            checked += 1
        except kubernetes_validate.utils.ValidationError as exc:
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: {'.'.join(map(str, exc.path))}: {exc.message}")
        except kubernetes_validate.utils.SchemaNotFoundError as exc:
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: {exc.message}")
    assert not problems, "\n".join(problems)
    assert checked >= 10


def test_custom_resources_match_their_crd_schemas(docs: list[dict[str, Any]]) -> None:
    problems = []
    for doc in docs:
        name = CRD_SCHEMAS.get((doc["apiVersion"], doc["kind"]))
        if name is None:
            continue
        schema = json.loads((SCHEMAS / name).read_text(encoding="utf-8"))
        validator = jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())
        for err in validator.iter_errors(doc):
            problems.append(f"{doc['kind']}/{doc['metadata']['name']}: {'.'.join(map(str, err.path))}: {err.message}")
    assert not problems, "\n".join(problems)


def test_the_crd_schemas_refuse_what_they_should() -> None:
    schema = json.loads((SCHEMAS / CRD_SCHEMAS[("kafka.strimzi.io/v1beta2", "KafkaTopic")]).read_text())
    good = {"apiVersion": "kafka.strimzi.io/v1beta2", "kind": "KafkaTopic",
            "metadata": {"name": "t", "labels": {"strimzi.io/cluster": "c"}}, "spec": {"partitions": 3, "replicas": 3}}
    jsonschema.validate(good, schema)
    for bad in (
        {**good, "spec": {"partitions": 0, "replicas": 3}},
        {**good, "spec": {"partitions": 3, "replicas": 3, "partition": 4}},  # a typo is not silently pruned
        {**good, "metadata": {"name": "t"}},  # no cluster label: no operator picks it up
        {**good, "spec": {"partitions": 3, "replicas": 3, "config": {"cleanup.policy": "compacted"}}},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


# ------------------------------------------------------------------------------------------ what the project needs


def config(docs: list[dict[str, Any]]) -> dict[str, str]:
    return by_kind(docs, "ConfigMap")["floorwatch-config"]["data"]  # type: ignore[no-any-return]


def test_every_topic_the_services_use_is_declared(docs: list[dict[str, Any]]) -> None:
    from deploy.local.stack import StackConfig, topic_specs
    from services.scorer.topics import TABLES

    cfg = config(docs)
    env = {k: v for k, v in cfg.items() if k.startswith("TOPIC_")}
    events, queues = int(cfg["EVENT_PARTITIONS"]), int(cfg["QUEUE_PARTITIONS"])
    wanted = {name: (parts, compact) for name, parts, compact in topic_specs(
        StackConfig(event_partitions=events, queue_partitions=queues), env)}
    for table, attr in TABLES.items():
        wanted[f"{cfg['SCORER_APP_ID']}-{table}-changelog"] = (events if attr == "event_partitions" else queues, True)
    wanted[f"{cfg['SCORER_APP_ID']}-__assignor-__leader"] = (1, False)

    declared = {}
    for doc in by_kind(docs, "KafkaTopic").values():
        spec = doc["spec"]
        topic = spec.get("topicName", doc["metadata"]["name"])
        declared[topic] = (spec["partitions"], spec["config"].get("cleanup.policy") == "compact")
        assert doc["metadata"]["labels"]["strimzi.io/cluster"] == "floorwatch"
        assert spec["replicas"] == 3, topic
        assert str(spec["config"]["min.insync.replicas"]) == "2", topic
    assert declared == wanted
    assert cfg["TOPIC_REPLICATION"] == "3"


def test_ingest_and_api_deployments(docs: list[dict[str, Any]]) -> None:
    deployments = by_kind(docs, "Deployment")
    assert set(deployments) == {"floorwatch-ingest", "floorwatch-api"}
    for name, dep in deployments.items():
        spec = dep["spec"]
        assert spec["replicas"] >= 2, name
        pod = spec["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0, name
        (c,) = pod["containers"]
        assert c["readinessProbe"]["httpGet"]["path"] == "/healthz", name
        assert c["startupProbe"]["httpGet"]["path"] == "/healthz", name
        assert "livenessProbe" in c, name
        assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"], name
        assert c["resources"]["limits"]["memory"], name
        assert c["securityContext"]["allowPrivilegeEscalation"] is False, name
        assert c["securityContext"]["readOnlyRootFilesystem"] is True, name
        assert_env_sources(docs, c, name)
        assert c["command"][:2] == ["python", "-m"] and c["command"][2].startswith("services."), name


def assert_env_sources(docs: list[dict[str, Any]], container: dict[str, Any], name: str) -> None:
    refs = container["envFrom"]
    assert {"configMapRef": {"name": "floorwatch-config"}} in refs, name
    assert {"secretRef": {"name": "floorwatch-secrets"}} in refs, name
    assert "floorwatch-secrets" in by_kind(docs, "Secret")


def test_scorer_statefulset(docs: list[dict[str, Any]]) -> None:
    sts = by_kind(docs, "StatefulSet")["floorwatch-scorer"]
    cfg = config(docs)
    spec = sts["spec"]
    assert 1 <= spec["replicas"] <= int(cfg["EVENT_PARTITIONS"]), "workers beyond the partition count sit idle"
    assert spec["serviceName"] in by_kind(docs, "Service")
    (claim,) = spec["volumeClaimTemplates"]
    (c,) = spec["template"]["spec"]["containers"]
    mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
    assert mounts[claim["metadata"]["name"]] == cfg["RUN_DIR"], "the RocksDB store lives on the claim"
    assert cfg["SCORER_STORE"].startswith("rocksdb://")
    index = {e["name"]: e for e in c.get("env", [])}["SCORER_WORKER_INDEX"]
    assert index["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.labels['apps.kubernetes.io/pod-index']"
    assert c["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert spec["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    assert spec["template"]["spec"]["securityContext"]["fsGroup"] > 0
    assert_env_sources(docs, c, "scorer")


def pod_templates(docs: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d["spec"]["template"] for d in docs if d["kind"] in ("Deployment", "StatefulSet")}


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_selectors_select_and_ports_exist(docs: list[dict[str, Any]]) -> None:
    templates = pod_templates(docs)
    for d in docs:
        if d["kind"] in ("Deployment", "StatefulSet"):
            assert selects(d["spec"]["selector"]["matchLabels"], d["spec"]["template"]["metadata"]["labels"])
    services = by_kind(docs, "Service")
    for name, svc in services.items():
        matched = [t for t in templates.values() if selects(svc["spec"]["selector"], t["metadata"]["labels"])]
        assert len(matched) == 1, f"Service {name} selects {len(matched)} workloads"
        ports = {p["name"] for c in matched[0]["spec"]["containers"] for p in c["ports"]}
        for p in svc["spec"]["ports"]:
            assert p["targetPort"] in ports, f"Service {name}: no container port {p['targetPort']}"
    for name, pdb in by_kind(docs, "PodDisruptionBudget").items():
        wanted = pdb["spec"]["selector"]["matchLabels"]
        assert any(selects(wanted, t["metadata"]["labels"]) for t in templates.values()), name
    assert {n.removeprefix("floorwatch-") for n in by_kind(docs, "PodDisruptionBudget")} == {"ingest", "api", "scorer"}
    for name, mon in by_kind(docs, "ServiceMonitor").items():
        wanted = mon["spec"]["selector"]["matchLabels"]
        (svc,) = [s for s in services.values() if selects(wanted, s["metadata"]["labels"])]
        assert {e["port"] for e in mon["spec"]["endpoints"]} <= {p["name"] for p in svc["spec"]["ports"]}, name
        # job = the Service's component label: the names the Prometheus rules use (ingest, api).
        assert svc["metadata"]["labels"][mon["spec"]["jobLabel"]] in ("ingest", "api")
    for name, mon in by_kind(docs, "PodMonitor").items():
        wanted = mon["spec"]["selector"]["matchLabels"]
        (tpl,) = [t for t in templates.values() if selects(wanted, t["metadata"]["labels"])]
        ports = {p["name"] for c in tpl["spec"]["containers"] for p in c["ports"]}
        assert {e["port"] for e in mon["spec"]["podMetricsEndpoints"]} <= ports, name
        assert tpl["metadata"]["labels"][mon["spec"]["jobLabel"]] == "scorer"


def test_secret_holds_exactly_the_documented_secrets(docs: list[dict[str, Any]]) -> None:
    from deploy.local.stack import SECRET_NAMES

    secret = by_kind(docs, "Secret")["floorwatch-secrets"]
    assert set(secret["stringData"]) == set(SECRET_NAMES)
    assert set(secret["stringData"].values()) == {"replace-me"}, "only placeholders in git"
    assert not set(config(docs)) & set(SECRET_NAMES), "secrets belong in the Secret, not the ConfigMap"
