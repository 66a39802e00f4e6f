"""Names agree across deploy/.env.example, compose, Kubernetes and the Settings classes."""

from __future__ import annotations

import pytest

from tests.unit.deploy import support
from tests.unit.deploy.support import (
    ENV_EXAMPLE,
    OVERLAYS,
    config_map,
    environment_of,
    load_compose,
    of_kind,
    pod_spec,
    read_dotenv,
    render,
    secret_data,
    workloads,
)

MPR_COMPOSE_SERVICES = ("gateway", "catalog", "transcoder", "notifier", "migrations")
# Each replica derives its own from its hostname; one configured value would be shared.
PER_REPLICA = {"NOTIFIER_INSTANCE_ID", "TRANSCODER_INSTANCE_ID"}
# Read only by the Lambda executor (deploy/aws), never by a container of compose or Kubernetes.
LAMBDA_ONLY = {"LAMBDA_WORK_DIR"}
# Set by a pod spec from the pod's own resources (downward API), not by the ConfigMap.
FROM_POD_SPEC = {"FFMPEG_THREADS"}
# Set by the manifests for a setting the code does not read yet (deploy/README.md says what it
# must do). Remove a name here once its service reads it.
PENDING: dict[str, str] = {}
# Each service's Settings give its own default; one ConfigMap value would give them one role.
PER_SERVICE = {"DATABASE_ROLE"}
SECRETS = {
    "AMQP_URL",
    "DATABASE_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "MPR_API_KEYS",
    "MPR_CALLBACK_SECRET",
    "WEBHOOK_SECRET",
    "RABBITMQ_MANAGEMENT_URL",  # its URL holds the management user's password
}


@pytest.fixture(scope="module")
def aliases() -> set[str]:
    catalog = support.settings_catalog()
    catalog.skip_if_incomplete()
    return catalog.aliases()


def test_env_example_documents_every_setting_of_every_service() -> None:
    catalog = support.settings_catalog()
    documented = read_dotenv(ENV_EXAMPLE).names
    for service in catalog.classes:
        missing = catalog.aliases(service) - documented
        assert not missing, f"{service} settings missing from deploy/.env.example: {missing}"
    catalog.skip_if_incomplete()


def test_env_example_holds_only_settings_and_compose_variables(aliases) -> None:
    unknown = read_dotenv(ENV_EXAMPLE).names - aliases - support.compose_variables()
    assert not unknown, f"neither a setting nor used by compose.yml: {sorted(unknown)}"


def test_env_example_leaves_per_replica_ids_unset() -> None:
    assert PER_REPLICA & set(read_dotenv(ENV_EXAMPLE).values) == set()


def test_compose_sets_only_real_settings_in_mpr_containers(aliases) -> None:
    services = load_compose()["services"]
    for name in MPR_COMPOSE_SERVICES:
        unknown = environment_of(services[name]).keys() - aliases
        assert not unknown, f"compose sets unknown variables in {name}: {sorted(unknown)}"


def test_settings_that_are_secrets_stay_out_of_the_configmap() -> None:
    for overlay in OVERLAYS:
        leaked = SECRETS & config_map(render(overlay)).get("data", {}).keys()
        assert not leaked, f"{overlay}: secrets in the ConfigMap: {leaked}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_configmap_and_secret_hold_only_real_settings(overlay, aliases) -> None:
    docs = render(overlay)
    unknown = config_map(docs)["data"].keys() - aliases
    assert not unknown, f"ConfigMap keys that no service reads: {sorted(unknown)}"
    for workload in workloads(docs):
        for container in pod_spec(workload)["containers"]:
            if support.service_of_command(container.get("command")) is None:
                continue  # infrastructure containers have their own variables
            env_names = {item["name"] for item in container.get("env", ())}
            unknown = env_names - aliases - PENDING.keys()
            assert not unknown, (workload["metadata"]["name"], unknown)
            for source in container.get("envFrom", ()):
                ref = source.get("secretRef")
                for secret in of_kind(docs, "Secret"):
                    if ref and secret["metadata"]["name"] == ref["name"]:
                        unknown = secret_data(secret).keys() - aliases
                        assert not unknown, f"Secret {ref['name']} has non-settings {unknown}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_setting_is_configured_in_kubernetes(overlay, aliases) -> None:
    """Every setting is in the ConfigMap, or is a secret, or is derived per replica."""
    configured = config_map(render(overlay))["data"].keys()
    exempt = SECRETS | PER_REPLICA | LAMBDA_ONLY | FROM_POD_SPEC | PER_SERVICE
    missing = aliases - configured - exempt
    assert not missing, f"settings missing from deploy/k8s/base/config.env: {sorted(missing)}"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_settings_from_the_pod_spec_are_set_there(overlay, aliases) -> None:
    set_in_pods = {
        item["name"]
        for workload in workloads(render(overlay))
        for container in pod_spec(workload)["containers"]
        for item in container.get("env", ())
    }
    assert set_in_pods & aliases >= FROM_POD_SPEC


def test_pending_settings_are_not_settings_yet(aliases) -> None:
    """Once the code reads one, it moves from PENDING to the checks above."""
    landed = PENDING.keys() & aliases
    assert not landed, f"{sorted(landed)} are settings now: remove them from PENDING"
    used = {
        item["name"]
        for workload in workloads(render("prod"))
        for container in pod_spec(workload)["containers"]
        for item in container.get("env", ())
    }
    assert PENDING.keys() <= used, "a PENDING name no manifest sets"


def test_documented_secrets_are_settings(aliases) -> None:
    assert aliases >= SECRETS
