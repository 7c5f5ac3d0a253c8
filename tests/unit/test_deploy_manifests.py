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

import base64
import json
import shutil
import subprocess
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
    ("kafka.strimzi.io/v1beta2", "KafkaUser"): "kafkauser-kafka.strimzi.io-v1beta2.json",
    ("monitoring.coreos.com/v1", "PodMonitor"): "monitors-monitoring.coreos.com-v1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "monitors-monitoring.coreos.com-v1.json",
}


# ------------------------------------------------------------------------------------------ rendering


def generated_base(target: Path) -> Path:
    """A copy of the base with its git-ignored secrets generated (what `make k8s-secrets` does)."""
    from deploy.local.k8s_secrets import generate

    shutil.copytree(BASE, target, ignore=shutil.ignore_patterns("secrets"))
    generate(target)
    return target


def read_env_file(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value
    return out


def load_base(base: Path) -> list[dict[str, Any]]:
    """What `kustomize build` makes of the base, for the transformers and generators the base uses."""
    kust = yaml.safe_load((base / "kustomization.yaml").read_text(encoding="utf-8"))
    known = {"apiVersion", "kind", "namespace", "labels", "resources", "images", "secretGenerator", "generatorOptions"}
    assert set(kust) <= known, f"the plain loader does not know {set(kust) - known}: extend it"
    assert kust.get("generatorOptions") == {"disableNameSuffixHash": True}, "the loader names Secrets without a hash"
    docs: list[dict[str, Any]] = []
    for res in kust["resources"]:
        for doc in yaml.safe_load_all((base / res).read_text(encoding="utf-8")):
            if doc:
                docs.append(json.loads(json.dumps(doc)))  # YAML anchors share objects: unshare them
    for gen in kust.get("secretGenerator", []):
        data: dict[str, str] = {}
        for env in gen["envs"]:
            data.update({k: base64.b64encode(v.encode()).decode() for k, v in read_env_file(base / env).items()})
        docs.append({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": gen["name"]}, "type": "Opaque",
                     "data": data})
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
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generated_base(tmp_path_factory.mktemp("k8s") / "base")


@pytest.fixture(scope="module")
def docs(base_dir: Path) -> list[dict[str, Any]]:
    return load_base(base_dir)


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
    from deploy.local.config import StackConfig
    from deploy.local.kafka import topic_specs
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
    """The shared ConfigMap, and the workload's own Secret only (never another workload's)."""
    from deploy.local.k8s_secrets import secret_name

    workload = name.removeprefix("floorwatch-")
    refs = container["envFrom"]
    assert {"configMapRef": {"name": "floorwatch-config"}} in refs, name
    secrets = [r["secretRef"]["name"] for r in refs if "secretRef" in r]
    assert secrets == [secret_name(workload)], name
    assert secret_name(workload) in by_kind(docs, "Secret")
    # The one key read from elsewhere: the workload's own Kafka password, from its KafkaUser's Secret.
    key_refs = [e["valueFrom"]["secretKeyRef"] for e in container.get("env", []) if "secretKeyRef" in str(e)]
    assert key_refs == [{"name": f"floorwatch-{workload}", "key": "password"}], name


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


def test_no_secret_and_no_placeholder_in_the_base() -> None:
    """A plain `kubectl apply -k` once ran with `replace-me` tokens from a Secret in git (issue 16)."""
    for path in sorted(BASE.glob("*.yaml")):
        text = path.read_text(encoding="utf-8")
        assert "replace-me" not in text, path.name
        for doc in yaml.safe_load_all(text):
            assert not (doc and doc.get("kind") == "Secret"), f"{path.name}: a Secret in the base"
    ignored = subprocess.run(["git", "check-ignore", "-q", str(BASE / "secrets" / "api.env")], cwd=REPO, check=False)
    assert ignored.returncode == 0, "generated secrets must be git-ignored"


def test_each_workload_gets_only_its_own_secrets(docs: list[dict[str, Any]]) -> None:
    from deploy.local.config import SECRET_NAMES
    from deploy.local.k8s_secrets import WORKLOAD_SECRETS, secret_name
    from services.core.secrets import is_placeholder

    secrets = by_kind(docs, "Secret")
    assert set(secrets) == {secret_name(w) for w in WORKLOAD_SECRETS}
    for workload, keys in WORKLOAD_SECRETS.items():
        data = {k: base64.b64decode(v).decode() for k, v in secrets[secret_name(workload)]["data"].items()}
        assert set(data) == set(keys), workload
        for key, random in keys.items():
            assert (len(data[key]) >= 32 and not is_placeholder(data[key])) if random else data[key] == "", key
    salt = secrets[secret_name("api")]["data"]["AGENT_ID_SALT"]
    assert secrets[secret_name("scorer")]["data"] == {"AGENT_ID_SALT": salt}, "one salt: the same agent names"
    names = {k for keys in WORKLOAD_SECRETS.values() for k in keys}
    assert set(SECRET_NAMES) <= names, "every secret the local stack generates has a home in Kubernetes"
    assert not set(config(docs)) & names, "secrets belong in the Secrets, not the ConfigMap"


def test_make_k8s_secrets_never_overwrites(tmp_path: Path) -> None:
    from deploy.local.k8s_secrets import generate

    base = generated_base(tmp_path / "base")
    before = {p.name: p.read_text() for p in (base / "secrets").iterdir()}
    assert generate(base) == []
    assert {p.name: p.read_text() for p in (base / "secrets").iterdir()} == before
    assert all((p.stat().st_mode & 0o777) == 0o600 for p in (base / "secrets").iterdir())


# ------------------------------------------------------------------------------------------ Kafka security


def _acls(user: dict[str, Any]) -> set[tuple[str, str, str]]:
    """(resource type, name or pattern, operation) for every ACL of a KafkaUser."""
    out = set()
    for acl in user["spec"]["authorization"]["acls"]:
        r = acl["resource"]
        name = r.get("name", "") + ("*" if r.get("patternType") == "prefix" else "")
        out |= {(r["type"], name, op) for op in acl["operations"]}
    return out


def test_every_service_has_its_own_kafka_user_with_least_privilege(docs: list[dict[str, Any]]) -> None:
    from services.core.config import Topics

    t = Topics()
    users = by_kind(docs, "KafkaUser")
    assert set(users) == {"floorwatch-ingest", "floorwatch-scorer", "floorwatch-api"}
    for user in users.values():
        assert user["spec"]["authentication"]["type"] == "scram-sha-512"
    # Ingest writes events only: it can neither read them back nor touch views, alerts or acks.
    assert _acls(users["floorwatch-ingest"]) == {
        ("topic", t.events, "Write"), ("topic", t.events, "Describe"), ("cluster", "", "IdempotentWrite")}
    # The API reads views and alerts, and writes acks (on the alerts topic) only.
    api = _acls(users["floorwatch-api"])
    assert {(kind, name) for kind, name, op in api if op in ("Write", "Create", "Delete", "Alter")} == {
        ("topic", t.alerts)}
    assert ("topic", t.events, "Read") not in api and ("topic", t.views, "Read") in api
    # Only the scorer writes views; nobody may delete or alter anything.
    writers_of_views = {n for n, u in users.items() if ("topic", t.views, "Write") in _acls(u)}
    assert writers_of_views == {"floorwatch-scorer"}
    for name, user in users.items():
        assert not {op for _, _, op in _acls(user)} & {"All", "Delete", "Alter", "AlterConfigs"}, name


def test_workloads_authenticate_as_their_own_user_over_tls(docs: list[dict[str, Any]]) -> None:
    cfg = config(docs)
    assert cfg["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL" and cfg["KAFKA_SASL_MECHANISM"] == "SCRAM-SHA-512"
    workloads = {**by_kind(docs, "Deployment"), **by_kind(docs, "StatefulSet")}
    for name in ("floorwatch-ingest", "floorwatch-api", "floorwatch-scorer"):
        pod = workloads[name]["spec"]["template"]["spec"]
        env = {e["name"]: e for c in pod["containers"] for e in c.get("env", [])}
        assert env["KAFKA_USERNAME"]["value"] == name
        assert env["KAFKA_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": name, "key": "password"}
        mounts = {m["mountPath"]: m["name"] for c in pod["containers"] for m in c.get("volumeMounts", [])}
        ca_dir = cfg["KAFKA_SSL_CAFILE"].rsplit("/", 1)[0]
        volume = {v["name"]: v for v in pod["volumes"]}[mounts[ca_dir]]
        assert volume["secret"]["secretName"] == "floorwatch-cluster-ca-cert"


def test_network_policies_close_the_namespace_and_open_each_port_to_whom_needs_it(
    docs: list[dict[str, Any]],
) -> None:
    policies = by_kind(docs, "NetworkPolicy")
    deny = policies["floorwatch-default-deny"]
    assert deny["spec"]["policyTypes"] == ["Ingress"] and "ingress" not in deny["spec"]
    closed = set(deny["spec"]["podSelector"]["matchExpressions"][0]["values"])
    pods = {d["spec"]["template"]["metadata"]["labels"]["app.kubernetes.io/name"]
            for d in [*by_kind(docs, "Deployment").values(), *by_kind(docs, "StatefulSet").values()]}
    assert closed == pods == {"floorwatch-ingest", "floorwatch-api", "floorwatch-scorer"}
    services = by_kind(docs, "Service")
    for name in ("floorwatch-ingest", "floorwatch-api", "floorwatch-scorer"):
        policy = policies[name]
        assert policy["spec"]["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": name}
        opened = {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]}
        assert opened == {p["targetPort"] if isinstance(p["targetPort"], int) else p["port"]
                          for p in services[name]["spec"]["ports"]}
    scorer_from = policies["floorwatch-scorer"]["spec"]["ingress"][0]["from"]
    assert scorer_from == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
