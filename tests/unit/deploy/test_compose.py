"""deploy/compose.yml: valid against the Compose Specification and consistent with the code."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from importlib import resources
from pathlib import Path

import jsonschema
import pytest

from mpr_shared.settings import CommonSettings
from mpr_shared.topology import catalog_s3_events, s3_events_exchange
from tests.unit.deploy import support
from tests.unit.deploy.support import (
    COMPOSE_FILE,
    DEPLOY,
    ROOT,
    build_settings,
    environment_of,
    load_compose,
)

MPR_SERVICES = ("gateway", "catalog", "transcoder", "notifier")
# `env_file` entries with `required: false` (see the header of deploy/compose.yml).
MIN_COMPOSE = (2, 24)


@pytest.fixture(scope="module")
def compose_schema() -> dict:
    """The Compose Specification's JSON schema, as vendored by check-jsonschema."""
    vendor = resources.files("check_jsonschema.builtin_schemas.vendor")
    return json.loads(vendor.joinpath("compose-spec.json").read_text())


@pytest.mark.parametrize(
    "env",
    [pytest.param(None, id="env-example"), pytest.param({}, id="no-env-file")],
)
def test_compose_file_follows_the_compose_specification(compose_schema, env) -> None:
    document = load_compose(env)
    validator = jsonschema.validators.validator_for(compose_schema)(compose_schema)
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors
    )


def test_docker_compose_config_accepts_the_file() -> None:
    """The real parser, where the one this file is written for is installed (no engine needed)."""
    argv = find_compose_cli()
    if isinstance(argv, str):
        pytest.skip(f"{argv}; the JSON-schema test covers the file")
    result = subprocess.run(
        [*argv, "-f", str(COMPOSE_FILE), "--env-file", str(support.ENV_EXAMPLE), "config", "-q"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def find_compose_cli() -> list[str] | str:
    """`docker compose` or `docker-compose`, if it is Compose >= 2.24; else why there is none.

    Debian's docker-compose package is Compose 1.29 (Python), which predates the Compose
    Specification's top-level `name` and `env_file: {path, required}`: it would refuse a valid
    file, so it is not the parser this test means.
    """
    found = []
    for argv in (["docker", "compose"], ["docker-compose"]):
        if not shutil.which(argv[0]):
            continue
        version = compose_version([*argv, "version"])
        if version and version >= MIN_COMPOSE:
            return argv
        found.append(f"`{' '.join(argv)}` is {_dotted(version) if version else 'not Compose'}")
    needs = f"needs Docker Compose {_dotted(MIN_COMPOSE)} or newer"
    return f"{needs}: " + ("; ".join(found) if found else "none on PATH")


def compose_version(argv: list[str]) -> tuple[int, int] | None:
    """(major, minor) from `… version` ("Docker Compose version v2.29.1", "… 1.29.2, build …")."""
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"version v?(\d+)\.(\d+)", result.stdout) if result.returncode == 0 else None
    return (int(match.group(1)), int(match.group(2))) if match else None


def _dotted(version: tuple[int, int]) -> str:
    return ".".join(map(str, version))


DEBIAN_COMPOSE_1_29 = "docker-compose version 1.29.2, build unknown\ndocker-py version: 5.0.3\n"


@pytest.mark.parametrize(
    ("tools", "expected"),
    [
        pytest.param({"docker-compose": DEBIAN_COMPOSE_1_29}, None, id="debian-1.29-skips"),
        pytest.param({"docker-compose": "Docker Compose version v2.23.3\n"}, None, id="2.23-skips"),
        pytest.param(
            {"docker-compose": "Docker Compose version v2.29.7\n"},
            ["docker-compose"],
            id="standalone-v2",
        ),
        pytest.param(
            {"docker": "Docker Compose version v2.31.0\n", "docker-compose": DEBIAN_COMPOSE_1_29},
            ["docker", "compose"],
            id="plugin-wins-over-1.29",
        ),
    ],
)
def test_only_compose_2_24_or_newer_is_used_as_the_parser(
    tools, expected, tmp_path, monkeypatch
) -> None:
    for name, output in tools.items():
        script = tmp_path / name
        script.write_text(f"#!/bin/sh\n/bin/cat <<'EOF'\n{output}EOF\n")
        script.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))
    found = find_compose_cli()
    if expected is None:
        assert isinstance(found, str) and "needs Docker Compose 2.24 or newer" in found
        assert "`docker-compose` is " in found
    else:
        assert found == expected


def test_every_interpolated_variable_is_documented_in_env_example() -> None:
    documented = support.read_dotenv(support.ENV_EXAMPLE).names
    assert support.compose_variables() - documented == set()


def test_the_file_needs_no_env_file_to_start() -> None:
    """Every ${VAR} has a local default, so `docker compose -f deploy/compose.yml up` works."""
    load_compose({})  # raises MissingVariable for a ${VAR:?} without a value


def test_dependencies_exist_and_their_conditions_can_be_met() -> None:
    services = load_compose()["services"]
    for name, service in services.items():
        for dependency, spec in (service.get("depends_on") or {}).items():
            assert dependency in services, f"{name} depends on unknown service {dependency}"
            target = services[dependency]
            condition = spec["condition"]
            if condition == "service_healthy":
                assert "test" in target.get("healthcheck", {}), (
                    f"{name} waits for {dependency} to be healthy, which has no healthcheck"
                )
            elif condition == "service_completed_successfully":
                assert target.get("restart", "no") == "no", f"{dependency} is not one-shot"


def test_app_services_start_after_migrations_and_minio_after_rabbitmq() -> None:
    services = load_compose()["services"]
    for name in MPR_SERVICES:
        assert services[name]["depends_on"]["migrations"] == {
            "condition": "service_completed_successfully"
        }
    assert services["minio"]["depends_on"]["rabbitmq"] == {"condition": "service_healthy"}
    assert services["migrations"]["command"] == ["python", "-m", "mpr_shared.db", "upgrade"]


def test_transcoder_can_be_scaled() -> None:
    transcoder = load_compose()["services"]["transcoder"]
    assert "container_name" not in transcoder
    assert "ports" not in transcoder
    env = environment_of(transcoder)
    assert "TRANSCODER_INSTANCE_ID" not in env, "one id would be shared by every replica"


def test_mounted_files_and_build_contexts_exist() -> None:
    for name, service in load_compose()["services"].items():
        for volume in service.get("volumes", ()):
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume["source"]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name} mounts missing {source}"
        if build := service.get("build"):
            context = (DEPLOY / build["context"]).resolve()
            assert context == ROOT, f"{name} must build from the repository root"
            assert (context / build["dockerfile"]).is_file(), f"{name}: no {build['dockerfile']}"


def test_mpr_images_are_built_from_the_one_dockerfile_for_their_service() -> None:
    services = load_compose()["services"]
    for name in [*MPR_SERVICES, "migrations"]:
        build = services[name]["build"]
        assert build["dockerfile"] == "Dockerfile", name
        package = build["args"]["SERVICE"]
        assert package == ("gateway" if name == "migrations" else name), name
        assert (ROOT / "services" / package / "pyproject.toml").is_file(), name
        assert services[name]["image"].split(":")[0] == f"mpr/{package}", name


def test_services_listen_on_every_interface_inside_containers() -> None:
    services = load_compose()["services"]
    assert environment_of(services["gateway"])["GATEWAY_HOST"] == "0.0.0.0"
    assert environment_of(services["notifier"])["NOTIFIER_HOST"] == "0.0.0.0"
    for name in ("catalog", "transcoder"):
        env = environment_of(services[name])
        assert (env["HEALTH_HOST"], env["HEALTH_PORT"]) == ("0.0.0.0", "8080")


def _container_env(service: str, monkeypatch_env: dict[str, str] | None = None) -> dict[str, str]:
    """What a container gets: the optional env_file (.env, here .env.example) under environment."""
    return {**support.env_example(), **environment_of(load_compose()["services"][service])}


@pytest.mark.parametrize("service", [*MPR_SERVICES, "migrations"])
def test_each_service_accepts_its_compose_configuration(service, monkeypatch) -> None:
    """The code's own validation runs on the compose environment (ports, timeouts, keys…)."""
    catalog = support.settings_catalog()
    command = load_compose()["services"][service].get("command")
    owner = support.service_of_command(command) or service
    if owner not in catalog.classes:
        pytest.skip(f"settings of {owner} do not exist yet: {catalog.missing.get(owner)}")
    settings = build_settings(catalog.classes[owner], _container_env(service), monkeypatch)
    assert settings.s3_endpoint_url == "http://minio:9000"
    assert "@rabbitmq:5672" in settings.amqp_url.get_secret_value()
    assert settings.async_database_url.startswith("postgresql+asyncpg://")


def test_minio_notifications_match_the_catalogs_exchange_and_queue(monkeypatch) -> None:
    services = load_compose()["services"]
    minio = environment_of(services["minio"])
    catalog_env = _container_env("catalog")
    settings = build_settings(CommonSettings, catalog_env, monkeypatch)
    exchange = s3_events_exchange(settings)

    assert minio["MINIO_NOTIFY_AMQP_ENABLE_PRIMARY"] == "on"
    assert minio["MINIO_NOTIFY_AMQP_EXCHANGE_PRIMARY"] == exchange.name
    assert minio["MINIO_NOTIFY_AMQP_EXCHANGE_TYPE_PRIMARY"] == exchange.type.value
    assert (minio["MINIO_NOTIFY_AMQP_DURABLE_PRIMARY"] == "on") is exchange.durable
    assert (minio["MINIO_NOTIFY_AMQP_AUTO_DELETED_PRIMARY"] == "on") is exchange.auto_delete
    assert minio["MINIO_NOTIFY_AMQP_INTERNAL_PRIMARY"] == "off"
    assert minio["MINIO_NOTIFY_AMQP_ROUTING_KEY_PRIMARY"] == settings.events_routing_key
    assert minio["MINIO_NOTIFY_AMQP_ROUTING_KEY_PRIMARY"] == catalog_s3_events(settings).routing_key
    # Without S3_EVENTS_ROUTING_KEY the routing key is the input bucket, on both sides.
    assert "S3_EVENTS_ROUTING_KEY" not in support.env_example()
    assert minio["MINIO_NOTIFY_AMQP_ROUTING_KEY_PRIMARY"] == settings.s3_bucket_in
    # MinIO publishes with the same credentials the services use.
    user, password = (
        support.env_example()["RABBITMQ_USER"],
        support.env_example()["RABBITMQ_PASSWORD"],
    )
    assert minio["MINIO_NOTIFY_AMQP_URL_PRIMARY"] == f"amqp://{user}:{password}@rabbitmq:5672"
    assert settings.amqp_url.get_secret_value() == f"amqp://{user}:{password}@rabbitmq:5672/"


def test_routing_key_override_reaches_minio_and_the_catalog(monkeypatch) -> None:
    env = {**support.env_example(), "S3_EVENTS_ROUTING_KEY": "uploads"}
    services = load_compose(env)["services"]
    assert environment_of(services["minio"])["MINIO_NOTIFY_AMQP_ROUTING_KEY_PRIMARY"] == "uploads"
    assert environment_of(services["catalog"])["S3_EVENTS_ROUTING_KEY"] == "uploads"


def test_minio_init_creates_buckets_and_the_notification_target_minio_defines() -> None:
    services = load_compose()["services"]
    init = services["minio-init"]
    script = init["command"][0]
    env = environment_of(init)
    assert env["S3_BUCKET_IN"] == environment_of(services["gateway"])["S3_BUCKET_IN"]
    assert env["S3_BUCKET_OUT"] == environment_of(services["gateway"])["S3_BUCKET_OUT"]
    assert 'mc mb --ignore-existing "local/$S3_BUCKET_IN" "local/$S3_BUCKET_OUT"' in script
    assert 'mc anonymous set download "local/$S3_BUCKET_IN"' in script
    assert 'mc anonymous set download "local/$S3_BUCKET_OUT"' in script
    (event_add,) = [line for line in script.splitlines() if line.startswith("mc event add")]
    target_ids = {
        key.removeprefix("MINIO_NOTIFY_AMQP_ENABLE_")
        for key, value in environment_of(services["minio"]).items()
        if key.startswith("MINIO_NOTIFY_AMQP_ENABLE_") and value == "on"
    }
    assert target_ids == {"PRIMARY"}
    assert event_add.endswith('"local/$S3_BUCKET_IN" arn:minio:sqs::PRIMARY:amqp')
    assert "--event put,delete" in event_add and "--ignore-existing" in event_add


def consumer_timeout_ms(path: Path) -> int:
    (value,) = re.findall(r"^consumer_timeout\s*=\s*(\d+)\s*$", path.read_text(), re.M)
    return int(value)


def test_consumer_timeout_fits_the_longest_job(monkeypatch) -> None:
    services = load_compose()["services"]
    assert (
        "./rabbitmq/rabbitmq.conf:/etc/rabbitmq/conf.d/90-mpr.conf:ro"
        in services["rabbitmq"]["volumes"]
    )
    timeout_ms = consumer_timeout_ms(DEPLOY / "rabbitmq" / "rabbitmq.conf")
    catalog = support.settings_catalog()
    if "transcoder" not in catalog.classes:
        pytest.skip(f"transcoder settings missing: {catalog.missing['transcoder']}")
    settings = build_settings(
        catalog.classes["transcoder"], _container_env("transcoder"), monkeypatch
    )
    assert settings.broker_consumer_timeout_seconds * 1000 == timeout_ms
    assert settings.max_job_seconds + settings.shutdown_grace_seconds < timeout_ms / 1000


def test_docker_stops_a_transcoder_only_after_its_grace_period() -> None:
    transcoder = load_compose()["services"]["transcoder"]
    grace = float(environment_of(transcoder)["SHUTDOWN_GRACE_SECONDS"])
    stop = transcoder["stop_grace_period"]
    assert re.fullmatch(r"\d+s", stop), stop
    assert int(stop[:-1]) == grace + 30


def test_nginx_template_variables_and_upstreams_exist_in_compose() -> None:
    services = load_compose()["services"]
    nginx = services["nginx"]
    assert "./nginx/nginx.conf:/etc/nginx/templates/default.conf.template:ro" in nginx["volumes"]
    template = (DEPLOY / "nginx" / "nginx.conf").read_text()
    # envsubst substitutes ${NAME} only for variables the container defines.
    assert set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)\}", template)) <= environment_of(nginx).keys()
    ports = {
        "gateway": environment_of(services["gateway"])["GATEWAY_PORT"],
        "notifier": environment_of(services["notifier"])["NOTIFIER_PORT"],
        "minio": "9000",
    }
    upstreams = dict(re.findall(r"^\s*server (\w+):(\d+) resolve;", template, re.M))
    assert upstreams == ports
    for dashboard in ("location = / {", "location /ui/ {"):  # the gateway's page and files
        block = template.split(dashboard, 1)[1].split("}", 1)[0]
        assert "proxy_pass http://mpr_gateway;" in block, dashboard
    sse = re.search(r"location \^~ /api/events \{(.*?)\}", template, re.S).group(1)
    assert "proxy_buffering off;" in sse and "proxy_pass http://mpr_notifier;" in sse
    for prefix, bucket in (("/media/in/", "S3_BUCKET_IN"), ("/media/out/", "S3_BUCKET_OUT")):
        assert f"location {prefix} {{" in template
        assert f"proxy_pass http://mpr_minio/${{{bucket}}}/;" in template
