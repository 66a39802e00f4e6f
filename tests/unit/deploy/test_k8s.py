"""deploy/k8s: every overlay renders, validates against Kubernetes' schemas and fits the code."""

from __future__ import annotations

import base64
import json
import math
import re
import secrets
from functools import cache

import jsonschema
import kubernetes_validate
import pytest

from mpr_shared.topology import TRANSCODER_JOBS, s3_events_exchange
from tests.unit.deploy import support
from tests.unit.deploy.support import (
    CRD_SCHEMAS,
    K8S,
    OPTIONAL_COMPONENTS,
    OVERLAYS,
    build_settings,
    config_map,
    container_env,
    containers,
    mpr_workload,
    of_kind,
    one,
    pod_spec,
    pod_template,
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
# Every overlay, and prod with its optional components too.
RENDERINGS = [(overlay,) for overlay in OVERLAYS] + [("prod", *OPTIONAL_COMPONENTS)]
SERVING = ("mpr-gateway", "mpr-catalog", "mpr-notifier")  # migrate in an init container


@cache
def crd_validator(api_version: str, kind: str) -> jsonschema.protocols.Validator | None:
    schema = json.loads(CRD_SCHEMAS[api_version].read_text())
    if kind not in schema["$defs"]:
        return None
    return jsonschema.Draft202012Validator({"$ref": f"#/$defs/{kind}", **schema})


def validation_problems(doc: dict, version: str) -> list[str]:
    name = f"{doc['kind']}/{doc['metadata']['name']}"
    if doc["apiVersion"] in CRD_SCHEMAS:
        # A custom resource: kubernetes-validate has no schema; ours are vendored.
        validator = crd_validator(doc["apiVersion"], doc["kind"])
        assert validator, f"{name}: no vendored schema for {doc['apiVersion']} {doc['kind']}"
        problems = [f"{name}: {e.message}" for e in validator.iter_errors(doc)]
        if doc["kind"] == "ScaledJob":  # its jobTargetRef is a JobSpec: validate it as one
            job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": doc["metadata"]}
            problems += validation_problems({**job, "spec": doc["spec"]["jobTargetRef"]}, version)
        return problems
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return [f"{name}: {'.'.join(map(str, exc.path))}: {exc.message}"]
    return []


@pytest.mark.parametrize("rendering", RENDERINGS, ids="+".join)
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_validates_against_the_kubernetes_schemas(rendering, version) -> None:
    # With optional components, what the plain overlay has is checked by its own case.
    checked_elsewhere = render(rendering[0]) if len(rendering) > 1 else ()
    docs = [doc for doc in render(*rendering) if doc not in checked_elsewhere]
    problems = [p for doc in docs for p in validation_problems(doc, version)]
    assert not problems, "\n".join(problems)


def test_schema_validation_finds_a_broken_scaled_job() -> None:
    """The check above can fail, for the KEDA fields and for the Job it wraps."""
    (scaled,) = of_kind(render("prod"), "ScaledJob")
    broken = json.loads(json.dumps(scaled))
    broken["spec"]["rollout"]["strategy"] = "gentle"
    broken["spec"]["jobTargetRef"]["template"]["spec"]["containers"][0]["commands"] = ["x"]
    problems = validation_problems(broken, KUBERNETES_VERSIONS[0])
    assert any("gentle" in p for p in problems), problems
    assert any("commands" in p for p in problems), problems


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_services_have_probes_on_health_and_ready(overlay) -> None:
    docs = render(overlay)
    for name, (service, port) in MPR_DEPLOYMENTS.items():
        (container,) = pod_spec(mpr_workload(docs, name))["containers"]
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
    for name in MPR_DEPLOYMENTS:
        spec = pod_spec(mpr_workload(docs, name))
        assert spec["securityContext"]["runAsUser"] == 10001, name
        volumes = {v["name"]: v for v in spec["volumes"]}
        for container in containers(mpr_workload(docs, name)):
            assert container["securityContext"]["readOnlyRootFilesystem"] is True, name
            mounts = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert "emptyDir" in volumes[mounts["/tmp"]], name
    transcoder = pod_spec(mpr_workload(docs, "mpr-transcoder"))
    work_dir = config_map(docs)["data"]["TRANSCODER_WORK_DIR"]
    mounts = {m["mountPath"]: m["name"] for m in transcoder["containers"][0]["volumeMounts"]}
    assert "emptyDir" in {v["name"]: v for v in transcoder["volumes"]}[mounts[work_dir]]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_transcoder_grace_period_covers_its_graceful_shutdown(overlay) -> None:
    docs = render(overlay)
    grace = float(config_map(docs)["data"]["SHUTDOWN_GRACE_SECONDS"])
    spec = pod_spec(mpr_workload(docs, "mpr-transcoder"))
    assert spec["terminationGracePeriodSeconds"] == grace + 30


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_disruption_budgets_and_services_select_the_pods(overlay) -> None:
    docs = render(overlay)
    for name in MPR_DEPLOYMENTS:
        workload = mpr_workload(docs, name)
        labels = pod_template(workload)["metadata"]["labels"]
        pdbs = [p for p in of_kind(docs, "PodDisruptionBudget") if p["metadata"]["name"] == name]
        # Pods of Jobs have no budget (no scale subresource); autoscaler annotations instead.
        assert len(pdbs) == (workload["kind"] == "Deployment"), name
        for pdb in pdbs:
            assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items(), name
        service = one(docs, "Service", name)
        assert service["spec"]["selector"].items() <= labels.items(), name
        (container,) = pod_spec(workload)["containers"]
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
    for path in ("/api", "/graphql", "/docs", "/openapi.json", "/", "/ui"):
        assert routes[path][1] == "mpr-gateway", path
        assert "proxy-buffering" not in str(routes[path][0]["metadata"].get("annotations"))


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_exactly_one_transcoder_autoscaler(overlay) -> None:
    docs = render(overlay)
    scalers = [
        *of_kind(docs, "ScaledObject"),
        *of_kind(docs, "ScaledJob"),
        *of_kind(docs, "HorizontalPodAutoscaler"),
    ]
    assert len(scalers) == 1, [s["kind"] for s in scalers]
    if scalers[0]["kind"] == "ScaledJob":
        assert scalers[0]["metadata"]["name"] == "mpr-transcoder"
        assert not [d for d in of_kind(docs, "Deployment") if "transcoder" in str(d["metadata"])]
    else:
        assert scalers[0]["spec"]["scaleTargetRef"]["name"] == "mpr-transcoder"


def test_keda_runs_transcoders_as_jobs_on_the_job_queue() -> None:
    docs = render("prod")
    scaled = one(docs, "ScaledJob", "mpr-transcoder")
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "rabbitmq"
    assert trigger["metadata"]["queueName"] == TRANSCODER_JOBS.name
    # Through the management API, unacknowledged (running) jobs count: with the default
    # strategy KEDA starts (queue length - running Jobs) new Jobs, one per waiting job.
    assert trigger["metadata"]["protocol"] == "http"
    assert trigger["metadata"]["excludeUnacknowledged"] == "false"
    assert trigger["metadata"]["value"] == "1"
    assert scaled["spec"]["scalingStrategy"]["strategy"] == "default"
    assert "activationValue" in trigger["metadata"]
    assert 0 <= scaled["spec"]["minReplicaCount"] < scaled["spec"]["maxReplicaCount"]
    auth = one(docs, "TriggerAuthentication", trigger["authenticationRef"]["name"])
    (ref,) = auth["spec"]["secretTargetRef"]
    assert ref["parameter"] == "host"
    # An operator-created Secret, never a placeholder in git.
    assert not [s for s in of_kind(docs, "Secret") if s["metadata"]["name"] == ref["name"]]


def test_scaling_down_or_releasing_never_stops_a_running_encode() -> None:
    scaled = one(render("prod"), "ScaledJob", "mpr-transcoder")
    job = scaled["spec"]["jobTargetRef"]
    # A new template applies to new Jobs; running ones finish (the default deletes them).
    assert scaled["spec"]["rollout"]["strategy"] == "gradual"
    # No deadline that would stop a pod mid-encode, no retry of a crashed pod (RabbitMQ
    # redelivers its job), and the pod itself exits when idle, which completes the Job.
    assert "activeDeadlineSeconds" not in job
    assert job["backoffLimit"] == 0 and job["parallelism"] == job["completions"] == 1
    pod = job["template"]
    assert pod["spec"]["restartPolicy"] == "Never"
    (container,) = pod["spec"]["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert float(env["TRANSCODER_IDLE_EXIT_SECONDS"]) > 0
    # Node autoscalers must not remove a node under a running transcoder.
    annotations = pod["metadata"]["annotations"]
    assert annotations["cluster-autoscaler.kubernetes.io/safe-to-evict"] == "false"
    assert annotations["karpenter.sh/do-not-disrupt"] == "true"


def test_the_scaled_job_runs_the_base_transcoder_pod() -> None:
    """One pod definition: the ScaledJob's template is the base Deployment's, copied."""
    base = one(support.kustomize_build(K8S / "base"), "Deployment", "mpr-transcoder")
    base = base["spec"]["template"]
    scaled = one(render("prod"), "ScaledJob", "mpr-transcoder")["spec"]["jobTargetRef"]["template"]
    (base_container,) = base["spec"]["containers"]
    (container,) = scaled["spec"]["containers"]
    for field in ("command", "ports", "resources", "volumeMounts", "livenessProbe"):
        assert container[field] == base_container[field], field
    assert scaled["spec"]["volumes"] == base["spec"]["volumes"]
    assert scaled["metadata"]["labels"] == base["metadata"]["labels"]
    # kustomize renamed the hashed ConfigMap in the ScaledJob too (components/keda/nameref.yaml).
    docs = render("prod")
    refs = {s["configMapRef"]["name"] for s in container["envFrom"] if "configMapRef" in s}
    assert refs == {config_map(docs)["metadata"]["name"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_ffmpeg_threads_follow_the_transcoders_cpu_limit(overlay, monkeypatch) -> None:
    docs = render(overlay)
    (container,) = pod_spec(mpr_workload(docs, "mpr-transcoder"))["containers"]
    (item,) = [e for e in container["env"] if e["name"] == "FFMPEG_THREADS"]
    ref = item["valueFrom"]["resourceFieldRef"]
    assert (ref["resource"], ref["divisor"]) == ("limits.cpu", "1")
    assert ref["containerName"] == container["name"]
    assert "FFMPEG_THREADS" not in config_map(docs)["data"], "the pod spec sets it"
    env = {**container_env_without_secrets(docs, container), **_production_secrets()}
    settings = build_settings(support.settings_catalog().classes["transcoder"], env, monkeypatch)
    limit = support.quantity(container["resources"]["limits"]["cpu"])
    assert settings.ffmpeg_threads == math.ceil(limit) >= 1


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_transcoder_scratch_is_sized_from_max_input_bytes(overlay) -> None:
    """work = 2 x MAX_INPUT_BYTES (source + outputs); ephemeral-storage = work + tmp + 1Gi."""
    docs = render(overlay)
    spec = pod_spec(mpr_workload(docs, "mpr-transcoder"))
    max_input = int(config_map(docs)["data"]["MAX_INPUT_BYTES"])
    sizes = {v["name"]: support.quantity(v["emptyDir"]["sizeLimit"]) for v in spec["volumes"]}
    assert sizes["work"] == 2 * max_input
    resources = spec["containers"][0]["resources"]
    storage = support.quantity(resources["limits"]["ephemeral-storage"])
    assert storage == sizes["work"] + sizes["tmp"] + 2**30
    assert support.quantity(resources["requests"]["ephemeral-storage"]) == storage


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_migrations_run_before_a_pod_of_a_new_version_serves(overlay) -> None:
    docs = render(overlay)
    for name in SERVING:
        deployment = one(docs, "Deployment", name)
        spec = pod_spec(deployment)
        (init,) = spec["initContainers"]
        (main,) = spec["containers"]
        assert init["command"] == ["python", "-m", "mpr_shared.db", "upgrade"], name
        # This pod's own image migrates to the schema this pod's code expects.
        assert init["image"] == main["image"], name
        assert init["envFrom"] == main["envFrom"], name
        # Old pods keep serving until a migrated new one is ready.
        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0, name
    # The transcoder fails open on the database and runs untrusted media: no DDL rights there.
    assert "initContainers" not in pod_spec(mpr_workload(docs, "mpr-transcoder"))
    assert not [j for j in of_kind(docs, "Job") if "migrations" in j["metadata"]["name"]]


@pytest.mark.parametrize("rendering", RENDERINGS, ids="+".join)
def test_each_service_runs_as_its_own_service_account(rendering) -> None:
    docs = render(*rendering)
    accounts = {a["metadata"]["name"]: a for a in of_kind(docs, "ServiceAccount")}
    for name in MPR_DEPLOYMENTS:
        spec = pod_spec(mpr_workload(docs, name))
        assert spec["serviceAccountName"] == name
        assert accounts[name]["automountServiceAccountToken"] is False, name
        assert spec["automountServiceAccountToken"] is False, name


def test_aws_iam_component_gives_a_role_to_each_service_that_calls_aws() -> None:
    docs = render("prod", *OPTIONAL_COMPONENTS)
    accounts = {a["metadata"]["name"]: a["metadata"] for a in of_kind(docs, "ServiceAccount")}
    for name in ("mpr-gateway", "mpr-catalog", "mpr-transcoder"):
        arn = accounts[name]["annotations"]["eks.amazonaws.com/role-arn"]
        assert re.fullmatch(rf"arn:aws:iam::\d{{12}}:role/{name}", arn), arn
    assert "annotations" not in accounts["mpr-notifier"], "the notifier calls no AWS API"
    assert "annotations" not in one(render("prod"), "ServiceAccount", "mpr-gateway")["metadata"]


def rabbitmq_series(image: str) -> tuple[int, int]:
    match = re.fullmatch(r"rabbitmq:(\d+)\.(\d+)(\.\d+)?-management", image)
    assert match, f"{image}: pin a rabbitmq:<major>.<minor>[.<patch>]-management tag"
    return int(match[1]), int(match[2])


def test_rabbitmq_is_one_supported_4x_series_everywhere() -> None:
    from tests.unit.deploy.support import load_compose

    compose = load_compose()["services"]["rabbitmq"]["image"]
    (dev,) = pod_spec(one(render("dev"), "StatefulSet", "mpr-rabbitmq"))["containers"]
    cluster = one(render("prod", *OPTIONAL_COMPONENTS), "RabbitmqCluster", "mpr-rabbitmq")
    series = {rabbitmq_series(i) for i in (compose, dev["image"], cluster["spec"]["image"])}
    (major_minor,) = series
    assert major_minor >= (4, 1), "3.13 and older are past community support"


def test_rabbitmq_cluster_keeps_quorum_through_the_loss_of_a_node() -> None:
    docs = render("prod", *OPTIONAL_COMPONENTS)
    cluster = one(docs, "RabbitmqCluster", "mpr-rabbitmq")
    assert cluster["spec"]["replicas"] == 3
    labels = cluster["metadata"]["labels"]
    (term,) = cluster["spec"]["affinity"]["podAntiAffinity"][
        "requiredDuringSchedulingIgnoredDuringExecution"
    ]
    assert term["topologyKey"] == "kubernetes.io/hostname"
    assert term["labelSelector"]["matchLabels"].items() <= labels.items()
    pdb = one(docs, "PodDisruptionBudget", "mpr-rabbitmq")
    assert pdb["spec"]["maxUnavailable"] == 1
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    compose_conf = support.DEPLOY / "rabbitmq" / "rabbitmq.conf"
    config = cluster["spec"]["rabbitmq"]["additionalConfig"]
    assert f"consumer_timeout = {consumer_timeout_ms(compose_conf)}" in config.splitlines()


def test_rabbitmq_queue_metrics_are_scraped_per_queue() -> None:
    monitor = one(render("prod", *OPTIONAL_COMPONENTS), "ServiceMonitor", "mpr-rabbitmq")
    (detailed,) = [e for e in monitor["spec"]["endpoints"] if e["path"] == "/metrics/detailed"]
    # The families behind rabbitmq_detailed_queue_{messages*,consumers} (dashboard, alerts).
    assert {"queue_coarse_metrics", "queue_consumer_count"} <= set(detailed["params"]["family"])
    assert detailed["port"] == "prometheus"


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
        for container in containers(workload):
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
    assert set(checked) == {"catalog", "gateway", "notifier", "shared", "transcoder"}


def container_env_without_secrets(docs, container) -> dict[str, str]:
    kept = dict(container)
    kept["envFrom"] = [s for s in container.get("envFrom", ()) if "secretRef" not in s]
    return container_env(docs, kept) or {}
