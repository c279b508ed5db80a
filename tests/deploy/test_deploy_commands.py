"""Every command line deploy/ runs parses against the real `cartwheel` CLI. Offline.

Compose services, Kubernetes containers, the image's CMD and the scale-out harness all
start Cartwheel through `cartwheel ...`; a renamed command or option, or an option that
falls back to an environment variable the role is not given (`cartwheel worker
--redis-url` reads REDIS_URL), would only show up at deploy time. Each line is parsed
by click exactly as the console script would parse it (`cartwheel.cli:main`), in the
environment that role gets, without running it.
"""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
import scaleout
from deploy_files import (
    CARTWHEEL_SERVICES,
    compose,
    exec_form,
    image_env,
    instructions,
    interpolate,
    k8s_object,
    pod_spec,
    runtime_stage,
    workloads,
)
from scaleout import HARNESS_ENV_KEYS

from cartwheel.cli import main as cartwheel_cli

SETTINGS_LIKE = frozenset({"DATABASE_URL", "REDIS_URL"})
"""Variables read by Settings (and by CLI options) that do not start with CARTWHEEL_."""


@dataclass(frozen=True)
class CommandLine:
    """One command line deploy/ runs and the environment it runs in."""

    where: str
    argv: list[str]
    env: dict[str, str]


def deployed_command_lines() -> list[CommandLine]:
    """Every command line deploy/ runs, with the environment its process gets."""
    lines = []
    image = image_env()
    for name, service in compose()["services"].items():
        if name in CARTWHEEL_SERVICES:
            env = {**image, **{k: interpolate(v) for k, v in service["environment"].items()}}
            lines.append(CommandLine(f"compose.yaml:{name}", service["command"], env))
    k8s_env = {
        **image,
        **k8s_object("ConfigMap", "cartwheel-config")["data"],
        **k8s_object("Secret", "cartwheel-secrets")["stringData"],
    }
    for workload in workloads():
        for container in pod_spec(workload)["containers"]:
            where = f"k8s {workload['metadata']['name']}"
            lines.append(CommandLine(where, container["command"], k8s_env))
    cmd = exec_form(instructions(runtime_stage(), "CMD")[0])
    lines.append(CommandLine("Dockerfile CMD", cmd, k8s_env))
    harness = scaleout.Harness(
        scaleout.HarnessConfig(
            database_url="postgresql+psycopg://postgres@127.0.0.1:5432/cartwheel",
            workdir=Path("/nonexistent-never-started"),
        )
    )
    harness_env = {k: v for k, v in harness.process_env().items() if k in HARNESS_ENV_KEYS}
    for what, template in (
        ("harness api", scaleout.DEFAULT_API_COMMAND),
        ("harness worker", scaleout.DEFAULT_WORKER_COMMAND),
        ("harness ingest", scaleout.DEFAULT_INGEST_COMMAND),
        ("harness migrate", scaleout.DEFAULT_MIGRATE_COMMAND),
    ):
        values = {"cartwheel": "cartwheel", "host": "127.0.0.1", "port": "8000"}
        argv = [part.format(**values) for part in template]
        lines.append(CommandLine(what, argv, harness_env))
    return lines


def parse(line: CommandLine) -> None:
    """Resolve `line.argv` through the real click groups and parse its options and
    arguments as the console script would (environment-backed options included),
    without running the command. Fails the test naming the place and the problem."""
    argv = line.argv
    assert argv[0] == "cartwheel", line.where
    command: click.Command = cartwheel_cli
    ctx = click.Context(cartwheel_cli, info_name="cartwheel")
    args = list(argv[1:])
    while isinstance(command, click.Group):
        if not args:
            pytest.fail(f"{line.where}: `{shlex.join(argv)}` names a group, not a command")
        name, args = args[0], args[1:]
        sub = command.get_command(ctx, name)
        if sub is None:
            pytest.fail(f"{line.where}: `{shlex.join(argv)}`: the CLI has no {name!r}")
        command = sub
        ctx = click.Context(command, info_name=name, parent=ctx)
    try:
        command.make_context(ctx.info_name, args, parent=ctx.parent)
    except click.UsageError as exc:
        pytest.fail(f"{line.where}: `{shlex.join(argv)}` does not parse: {exc.format_message()}")


def test_deploy_runs_the_three_roles() -> None:
    roles = {tuple(line.argv[:2]) for line in deployed_command_lines()}
    assert roles == {
        ("cartwheel", "serve"),
        ("cartwheel", "worker"),
        ("cartwheel", "db"),
        ("cartwheel", "runlog"),
    }


def test_every_command_deploy_runs_parses_in_its_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    lines = deployed_command_lines()
    assert len(lines) >= 10
    for line in lines:
        with monkeypatch.context() as env:
            # Only the role's own environment: an option that falls back to a variable
            # the role is not given must fail here, not at deploy time.
            for name in set(os.environ) - set(line.env):
                if name in SETTINGS_LIKE or name.startswith("CARTWHEEL_"):
                    env.delenv(name)
            for name, value in line.env.items():
                env.setenv(name, value)
            parse(line)


def test_a_wrong_command_line_is_reported() -> None:
    with pytest.raises(pytest.fail.Exception, match="the CLI has no 'wroker'"):
        parse(CommandLine("example", ["cartwheel", "wroker"], {}))
    with pytest.raises(pytest.fail.Exception, match="names a group"):
        parse(CommandLine("example", ["cartwheel", "db"], {}))
    with pytest.raises(pytest.fail.Exception, match="No such option '--prot'"):
        parse(CommandLine("example", ["cartwheel", "serve", "--prot", "8000"], {}))
