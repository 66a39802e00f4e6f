"""deploy/k8s: every overlay renders, validates against Kubernetes' schemas and fits the code."""

from __future__ import annotations

import base64
import json
import re
import secrets
from functools import cache

import jsonschema
import kubernetes_validate
import pytest

from mpr_shared.topology import TRANSCODER_JOBS, s3_events_exchange
from tests.unit.deploy import support
from tests.unit.deploy.support import (
    K8S,
    KEDA_SCHEMA,
    OVERLAYS,
    build_settings,
    config_map,
    container_env,
    of_kind,
    one,
    pod_spec,
    render,
    workloads,
)
from tests.unit.deploy.test_compose import consumer_timeout_ms

MPR_DEPLOYMENTS = {
    "mpr-gateway": ("gateway", 8000),
    "mpr-catalog": ("catalog", 8080),
    "mpr-transcoder": ("transcoder", 8080),
    "mpr-notifier": ("notifier", 8001),
}
# The oldest Kubernetes MPR supports and the newest kubernetes-validate knows.
KUBERNETES_VERSIONS = ("1.29", kubernetes_validate.utils.latest_version())
CRD_GROUPS = {"keda.sh/v1alpha1"}


@cache
def keda_validators() -> dict[str, jsonschema.protocols.Validator]:
    schema = json.loads(KEDA_SCHEMA.read_text())
    return {
        kind: jsonschema.Draft202012Validator({"$ref": f"#/$defs/{kind}", **schema})
        for kind in ("ScaledObject", "TriggerAuthentication")
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_validates_against_the_kubernetes_schemas(overlay, version) -> None:
    problems = []
    for doc in render(overlay):
        name = f"{doc['kind']}/{doc['metadata']['name']}"
        if doc["apiVersion"] in CRD_GROUPS:
            # A CRD: kubernetes-validate has no schema; ours is vendored (keda.schema.json).
            validator = keda_validators().get(doc["kind"])
            assert validator, f"{name}: no vendored schema for {doc['apiVersion']} {doc['kind']}"
            problems += [f"{name}: {e.message}" for e in validator.iter_errors(doc)]
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(map(str, exc.path))
            problems.append(f"{name}: {path}: {exc.message}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_have_probes_on_health_and_ready(overlay) -> None:
    docs = render(overlay)
    for name, (service, port) in MPR_DEPLOYMENTS.items():
        (container,) = pod_spec(one(docs, "Deployment", name))["containers"]
        assert container["command"] == ["python", "-m", f"mpr_{service}"]
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        for probe, path in (("livenessProbe", "/api/health"), ("readinessProbe", "/api/ready")):
            get = container[probe]["httpGet"]
            assert get["path"] == path, (name, probe)
            assert ports[get["port"]] == port, (name, probe)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ports_in_the_config_match_the_containers(overlay) -> None:
    data = config_map(render(overlay))["data"]
    assert data["GATEWAY_PORT"] == str(MPR_DEPLOYMENTS["mpr-gateway"][1])
    assert data["NOTIFIER_PORT"] == str(MPR_DEPLOYMENTS["mpr-notifier"][1])
    assert data["HEALTH_PORT"] == "8080"
    assert data["GATEWAY_HOST"] == data["NOTIFIER_HOST"] == data["HEALTH_HOST"] == "0.0.0.0"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_is_bounded_and_unprivileged(overlay) -> None:
    docs = render(overlay)
    for workload in workloads(docs):
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True, workload["metadata"]["name"]
        for container in spec["containers"] + spec.get("initContainers", []):
            where = f"{workload['metadata']['name']}/{container['name']}"
            resources = container["resources"]
            assert {"cpu", "memory"} <= resources["requests"].keys(), where
            assert {"cpu", "memory"} <= resources["limits"].keys(), where
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, where
            assert security["capabilities"]["drop"] == ["ALL"], where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_mpr_containers_have_read_only_roots_and_writable_scratch(overlay) -> None:
    docs = render(overlay)
    for name in [*MPR_DEPLOYMENTS, "mpr-migrations"]:
        kind = "Job" if name == "mpr-migrations" else "Deployment"
        spec = pod_spec(one(docs, kind, name))
        (container,) = spec["containers"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
        assert spec["securityContext"]["runAsUser"] == 10001, name
        mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
        volumes = {v["name"]: v for v in spec["volumes"]}
        assert "emptyDir" in volumes[mounts["/tmp"]], name
    transcoder = pod_spec(one(docs, "Deployment", "mpr-transcoder"))
    work_dir = config_map(docs)["data"]["TRANSCODER_WORK_DIR"]
    mounts = {m["mountPath"]: m["name"] for m in transcoder["containers"][0]["volumeMounts"]}
    assert "emptyDir" in {v["name"]: v for v in transcoder["volumes"]}[mounts[work_dir]]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_transcoder_grace_period_covers_its_graceful_shutdown(overlay) -> None:
    docs = render(overlay)
    grace = float(config_map(docs)["data"]["SHUTDOWN_GRACE_SECONDS"])
    spec = pod_spec(one(docs, "Deployment", "mpr-transcoder"))
    assert spec["terminationGracePeriodSeconds"] == grace + 30


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_disruption_budgets_and_services_select_the_pods(overlay) -> None:
    docs = render(overlay)
    for name in MPR_DEPLOYMENTS:
        labels = one(docs, "Deployment", name)["spec"]["template"]["metadata"]["labels"]
        pdb = one(docs, "PodDisruptionBudget", name)
        assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items(), name
        service = one(docs, "Service", name)
        assert service["spec"]["selector"].items() <= labels.items(), name
        (container,) = pod_spec(one(docs, "Deployment", name))["containers"]
        port_names = {p["name"] for p in container["ports"]}
        assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names, name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ingress_routes_sse_unbuffered_to_the_notifier(overlay) -> None:
    docs = render(overlay)
    routes = {}
    for ingress in of_kind(docs, "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                routes[path["path"]] = (ingress, path["backend"]["service"]["name"])
    events, backend = routes["/api/events"]
    assert backend == "mpr-notifier"
    annotations = events["metadata"]["annotations"]
    assert annotations["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 600
    for path in ("/api", "/graphql", "/docs", "/openapi.json"):
        assert routes[path][1] == "mpr-gateway", path
        assert "proxy-buffering" not in str(routes[path][0]["metadata"].get("annotations"))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_exactly_one_transcoder_autoscaler(overlay) -> None:
    docs = render(overlay)
    scalers = [*of_kind(docs, "ScaledObject"), *of_kind(docs, "HorizontalPodAutoscaler")]
    assert len(scalers) == 1, [s["kind"] for s in scalers]
    assert scalers[0]["spec"]["scaleTargetRef"]["name"] == "mpr-transcoder"


def test_keda_scales_on_the_transcoder_job_queue() -> None:
    docs = render("prod")
    scaled = one(docs, "ScaledObject", "mpr-transcoder")
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "rabbitmq"
    assert trigger["metadata"]["queueName"] == TRANSCODER_JOBS.name
    # Through the management API, unacknowledged (running) jobs count, so busy transcoders
    # are not scaled away.
    assert trigger["metadata"]["protocol"] == "http"
    assert trigger["metadata"]["excludeUnacknowledged"] == "false"
    assert "activationValue" in trigger["metadata"]
    assert 0 <= scaled["spec"]["minReplicaCount"] < scaled["spec"]["maxReplicaCount"]
    auth = one(docs, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    (ref,) = auth["spec"]["secretTargetRef"]
    assert ref["parameter"] == "host"
    # An operator-created Secret, never a placeholder in git.
    assert not [s for s in of_kind(docs, "Secret") if s["metadata"]["name"] == ref["name"]]


def test_hpa_alternative_scales_on_cpu() -> None:
    hpa = one(render("dev"), "HorizontalPodAutoscaler", "mpr-transcoder")
    (metric,) = hpa["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu"
    assert hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]


def test_prod_contains_no_secrets_and_no_development_images() -> None:
    docs = render("prod")
    assert not list(of_kind(docs, "Secret")), "prod Secrets are created outside git"
    assert config_map(docs)["data"]["MPR_ENV"] == "production"
    assert config_map(docs)["data"]["S3_ENDPOINT_URL"] == ""  # real AWS S3
    for workload in workloads(docs):
        for container in pod_spec(workload)["containers"]:
            image = container["image"]
            assert re.search(r":[0-9][\w.-]*$", image), f"{image}: pin a release tag"


def test_dev_secrets_agree_with_the_dev_infrastructure() -> None:
    docs = render("dev")
    app = support.secret_data(one(docs, "Secret", "mpr-secrets"))
    infra = support.secret_data(one(docs, "Secret", "mpr-dev-infra"))
    rabbit = f"{infra['RABBITMQ_DEFAULT_USER']}:{infra['RABBITMQ_DEFAULT_PASS']}@mpr-rabbitmq:5672"
    assert app["AMQP_URL"] == f"amqp://{rabbit}/"
    assert infra["MINIO_NOTIFY_AMQP_URL_PRIMARY"] == f"amqp://{rabbit}"
    assert app["DATABASE_URL"] == (
        f"postgresql://{infra['POSTGRES_USER']}:{infra['POSTGRES_PASSWORD']}"
        f"@mpr-postgres:5432/{infra['POSTGRES_DB']}"
    )
    assert (app["AWS_ACCESS_KEY_ID"], app["AWS_SECRET_ACCESS_KEY"]) == (
        infra["MINIO_ROOT_USER"],
        infra["MINIO_ROOT_PASSWORD"],
    )
    for service in ("mpr-rabbitmq", "mpr-minio", "mpr-postgres"):
        one(docs, "Service", service)


def test_dev_minio_notifications_match_the_catalogs_exchange(monkeypatch) -> None:
    docs = render("dev")
    (minio,) = pod_spec(one(docs, "StatefulSet", "mpr-minio"))["containers"]
    env = container_env(docs, minio)
    (catalog,) = pod_spec(one(docs, "Deployment", "mpr-catalog"))["containers"]
    settings = build_settings(
        support.settings_catalog().classes["shared"], container_env(docs, catalog), monkeypatch
    )
    exchange = s3_events_exchange(settings)
    assert env["MINIO_NOTIFY_AMQP_EXCHANGE_PRIMARY"] == exchange.name
    assert env["MINIO_NOTIFY_AMQP_EXCHANGE_TYPE_PRIMARY"] == exchange.type.value
    assert (env["MINIO_NOTIFY_AMQP_DURABLE_PRIMARY"] == "on") is exchange.durable
    assert (env["MINIO_NOTIFY_AMQP_AUTO_DELETED_PRIMARY"] == "on") is exchange.auto_delete
    assert env["MINIO_NOTIFY_AMQP_ROUTING_KEY_PRIMARY"] == settings.events_routing_key
    assert settings.events_routing_key == settings.s3_bucket_in
    job = one(docs, "Job", "mpr-minio-init")
    script = pod_spec(job)["containers"][0]["args"][0]
    assert '--ignore-existing "local/$S3_BUCKET_IN" arn:minio:sqs::PRIMARY:amqp' in script
    assert env["MINIO_NOTIFY_AMQP_ENABLE_PRIMARY"] == "on"


def test_dev_rabbitmq_uses_the_same_consumer_timeout_as_compose() -> None:
    docs = render("dev")
    compose_conf = support.DEPLOY / "rabbitmq" / "rabbitmq.conf"
    dev_conf = K8S / "overlays" / "dev" / "rabbitmq.conf"
    assert dev_conf.read_text() == compose_conf.read_text()
    rendered = one_prefixed(docs, "ConfigMap", "mpr-rabbitmq-config")["data"]["90-mpr.conf"]
    assert f"consumer_timeout = {consumer_timeout_ms(compose_conf)}" in rendered
    seconds = float(config_map(docs)["data"]["RABBITMQ_CONSUMER_TIMEOUT_SECONDS"])
    assert seconds * 1000 == consumer_timeout_ms(compose_conf)


def one_prefixed(docs, kind: str, prefix: str) -> dict:
    (found,) = (d for d in of_kind(docs, kind) if d["metadata"]["name"].startswith(prefix + "-"))
    return found


def _production_secrets() -> dict[str, str]:
    """Realistic, non-placeholder values, as an operator would create them."""
    password = secrets.token_urlsafe(16)
    whsec = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    return {
        "AMQP_URL": f"amqps://mpr:{password}@rabbitmq.internal:5671/",
        "DATABASE_URL": f"postgresql://mpr:{password}@postgres.internal:5432/mpr",
        "AWS_ACCESS_KEY_ID": "AKIA" + secrets.token_hex(8).upper(),
        "AWS_SECRET_ACCESS_KEY": secrets.token_urlsafe(30),
        "MPR_API_KEYS": f"ops:{secrets.token_urlsafe(24)}",
        "WEBHOOK_SECRET": whsec,
        "MPR_CALLBACK_SECRET": whsec,
    }


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_each_service_accepts_its_kubernetes_configuration(overlay, monkeypatch) -> None:
    """The code's own validation on ConfigMap + Secret (+ env): MPR_ENV=production in prod."""
    docs = render(overlay)
    catalog = support.settings_catalog()
    checked = []
    for workload in workloads(docs):
        for container in pod_spec(workload)["containers"]:
            owner = support.service_of_command(container.get("command"))
            if owner is None:
                continue
            if owner not in catalog.classes:
                pytest.skip(f"settings of {owner} do not exist yet: {catalog.missing[owner]}")
            env = container_env(docs, container)
            if env is None:  # prod: the Secret is created outside git
                env = {**container_env_without_secrets(docs, container), **_production_secrets()}
            with monkeypatch.context() as patch:
                settings = build_settings(catalog.classes[owner], env, patch)
            assert settings.mpr_env.value == ("development" if overlay == "dev" else "production")
            checked.append(owner)
    assert sorted(checked) == ["catalog", "gateway", "notifier", "shared", "transcoder"]


def container_env_without_secrets(docs, container) -> dict[str, str]:
    kept = dict(container)
    kept["envFrom"] = [s for s in container.get("envFrom", ()) if "secretRef" not in s]
    return container_env(docs, kept) or {}
