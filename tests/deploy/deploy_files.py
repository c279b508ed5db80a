"""Readers for the files under deploy/, shared by the static deploy tests."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
K8S_DIR = DEPLOY / "k8s"
DOCKERFILE = DEPLOY / "Dockerfile"

CARTWHEEL_SERVICES = ("migrate", "api", "worker", "runlog-ingest", "runlog-prune")
"""Compose services that run the Cartwheel image."""


def compose() -> dict[str, Any]:
    """deploy/compose.yaml, anchors and merge keys resolved."""
    data: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return data


def k8s_documents() -> list[tuple[Path, dict[str, Any]]]:
    """Every non-empty YAML document under deploy/k8s/, with its file."""
    docs = []
    for path in sorted(K8S_DIR.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((path, doc))
    return docs


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    """The one object of `kind` named `name` under deploy/k8s/ (a fresh copy)."""
    for _, doc in k8s_documents():
        if doc["kind"] == kind and doc["metadata"]["name"] == name:
            return doc
    raise AssertionError(f"deploy/k8s/ has no {kind} named {name}")


def pod_spec(obj: Mapping[str, Any]) -> dict[str, Any]:
    """The pod spec of a Deployment, Job or CronJob."""
    template = obj["spec"]["jobTemplate"]["spec"] if obj["kind"] == "CronJob" else obj["spec"]
    spec: dict[str, Any] = template["template"]["spec"]
    return spec


def workloads() -> list[dict[str, Any]]:
    """The Deployments, Jobs and CronJobs under deploy/k8s/ (all that runs the image)."""
    return [doc for _, doc in k8s_documents() if doc["kind"] in {"Deployment", "Job", "CronJob"}]


def dockerfile() -> DockerfileParser:
    """deploy/Dockerfile, parsed."""
    return DockerfileParser(str(DOCKERFILE))


def dockerfile_stages() -> list[list[dict[str, Any]]]:
    """Instructions per build stage (comments dropped)."""
    stages: list[list[dict[str, Any]]] = []
    for instr in dockerfile().structure:
        if instr["instruction"] == "FROM":
            stages.append([])
        if stages and instr["instruction"] != "COMMENT":
            stages[-1].append(instr)
    return stages


def runtime_stage() -> list[dict[str, Any]]:
    """The instructions of the last (runtime) stage."""
    return dockerfile_stages()[-1]


def instructions(stage: list[dict[str, Any]], name: str) -> list[str]:
    """The arguments of every `name` instruction in `stage`, in order."""
    return [i["value"] for i in stage if i["instruction"] == name]


def exec_form(value: str) -> list[str]:
    """A JSON exec-form instruction argument (CMD ["a", "b"]) as a list."""
    parsed = json.loads(value)
    assert isinstance(parsed, list), f"{value!r} is not in exec form"
    return [str(p) for p in parsed]


def image_env() -> dict[str, str]:
    """ENV of the runtime stage (later values win)."""
    env: dict[str, str] = {}
    for instr in runtime_stage():
        if instr["instruction"] == "ENV":
            for word in shlex.split(instr["value"]):
                key, _, value = word.partition("=")
                env[key] = value
    return env


def interpolate(value: str) -> str:
    """Compose's ${VAR:?msg} / ${VAR:-default} with a stand-in value, for parsing."""
    return re.sub(r"\$\{([A-Z_]+)(?::?[-?][^}]*)?\}", "stand-in", value)
