"""Function projects: the `cartwheel.toml` file, its build and its fixtures.

A project is a folder holding one function: its source, its input query, the built
WebAssembly module and test fixtures, described by `cartwheel.toml` (modelled on
Shopify's `shopify.extension.toml`)::

    name = "Tiered VIP discount"
    handle = "tiered-vip-discount"
    description = "..."                 # optional
    fixtures = "fixtures"                # optional, the default

    [targeting]
    target = "cart.lines.discounts.generate.run"
    input_query = "input.graphql"        # optional, the default
    export = "_start"                    # optional, the default

    [build]
    command = "cargo build --release --target wasm32-wasi && cp ... fn.wasm"  # optional
    path = "fn.wasm"

    [input.variables]                    # optional
    namespace = "cartwheel"
    key = "function-configuration"

Paths are relative to the file and must stay inside the project folder. The build
command runs through ``/bin/sh`` in the project folder, so it may chain steps.

Fixtures are JSON files ``{"description", "input", "output"}`` (the input JSON the
function receives and the output it must print) or, for a run that must fail,
``{"description", "input", "error": {"code", "logs"}}``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from functions_sdk.apis import UnknownTargetError, get_target
from functions_sdk.errors import CartwheelError
from functions_sdk.limits import Limits
from functions_sdk.output import InvalidOutputError, validate_output
from functions_sdk.runner import CompiledModule, RunResult, load_module, run

PROJECT_FILE = "cartwheel.toml"
"""The project file's name, looked up in the given folder and its parents."""

DEFAULT_INPUT_QUERY = "input.graphql"
DEFAULT_EXPORT = "_start"
DEFAULT_FIXTURES = "fixtures"

DEFAULT_BUILD_TIMEOUT_S = 900.0
"""A cold Rust build takes ~25 s here; the bound only catches a hung build."""

BUILD_LOG_TAIL_LINES = 40
"""Lines of a failed build's output kept in the error."""

_HANDLE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,48}[a-z0-9])?$")
_EXPORT = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-]*$")
_TOP_KEYS = frozenset({"name", "handle", "description", "fixtures", "targeting", "build", "input"})
_TARGETING_KEYS = frozenset({"target", "input_query", "export"})
_BUILD_KEYS = frozenset({"command", "path"})
_VARIABLES_KEYS = frozenset({"namespace", "key"})


class ProjectError(CartwheelError):
    """A function project that cannot be used as it is.

    Codes: PROJECT_NOT_FOUND (no `cartwheel.toml`), PROJECT_SYNTAX (not TOML),
    PROJECT_INVALID (a missing or wrong setting; `field` names it), INPUT_QUERY_MISSING,
    MODULE_NOT_BUILT, FIXTURE_INVALID.
    """

    code = "PROJECT_INVALID"


class BuildError(CartwheelError):
    """The build did not produce a usable module.

    Codes: BUILD_NOT_CONFIGURED (no `[build] command`), BUILD_FAILED (non-zero exit;
    `exit_status` and the `output` tail attached), BUILD_TIMEOUT, MODULE_NOT_BUILT (the
    command succeeded but `[build] path` does not exist).
    """

    code = "BUILD_FAILED"


@dataclass(frozen=True, slots=True)
class InputVariables:
    """The JSON metafield on the function's owner whose top-level keys are the input
    query's variables."""

    namespace: str
    key: str


@dataclass(frozen=True, slots=True)
class BuildConfig:
    """How the module is built: a shell command (None for a prebuilt module) and the
    module it leaves behind (absolute path)."""

    command: str | None
    path: Path


@dataclass(frozen=True, slots=True)
class Project:
    """A loaded, validated `cartwheel.toml`. Paths are absolute."""

    root: Path
    name: str
    handle: str
    description: str
    target: str
    input_query_path: Path
    export: str
    build: BuildConfig
    input_variables: InputVariables | None
    fixtures_dir: Path

    @property
    def config_path(self) -> Path:
        return self.root / PROJECT_FILE

    @property
    def wasm_path(self) -> Path:
        return self.build.path

    @property
    def limits(self) -> Limits:
        """The limits of the project's target (its module size limit among them)."""
        return get_target(self.target).limits

    def read_input_query(self) -> str:
        """The input query's text.

        Raises:
            ProjectError: INPUT_QUERY_MISSING when the file does not exist.
        """
        try:
            return self.input_query_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ProjectError(
                f"The input query {self._relative(self.input_query_path)} does not exist. "
                f"Create it or fix [targeting] input_query in {self.config_path}.",
                code="INPUT_QUERY_MISSING",
                path=str(self.input_query_path),
            ) from None

    def read_wasm(self) -> bytes:
        """The built module's bytes.

        Raises:
            ProjectError: MODULE_NOT_BUILT when `[build] path` does not exist yet.
        """
        try:
            return self.wasm_path.read_bytes()
        except FileNotFoundError:
            raise ProjectError(
                f"The module {self._relative(self.wasm_path)} has not been built. "
                "Run `cartwheel fn build` first.",
                code="MODULE_NOT_BUILT",
                path=str(self.wasm_path),
            ) from None

    def fixtures(self) -> list[Fixture]:
        """Every `*.json` fixture of the project, sorted by name (none if the folder
        does not exist).

        Raises:
            ProjectError: FIXTURE_INVALID naming the file and what is wrong.
        """
        if not self.fixtures_dir.is_dir():
            return []
        return [load_fixture(p) for p in sorted(self.fixtures_dir.glob("*.json"))]

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe view, as `cartwheel fn info --json` prints it."""
        return {
            "root": str(self.root),
            "name": self.name,
            "handle": self.handle,
            "description": self.description,
            "target": self.target,
            "input_query": str(self.input_query_path),
            "export": self.export,
            "build": {"command": self.build.command, "path": str(self.build.path)},
            "input_variables": (
                None
                if self.input_variables is None
                else {"namespace": self.input_variables.namespace, "key": self.input_variables.key}
            ),
            "fixtures": str(self.fixtures_dir),
        }

    def _relative(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)


@dataclass(frozen=True, slots=True)
class Fixture:
    """One test case: an input and either the exact output expected or the error code
    (and a piece of the logs) a failing run must end with."""

    name: str
    path: Path
    description: str
    input: Any
    output: Any | None
    error_code: str | None
    error_logs: str | None

    def input_bytes(self) -> bytes:
        """The input as the function receives it on stdin."""
        return json.dumps(self.input, ensure_ascii=False).encode()

    @property
    def expects_error(self) -> bool:
        return self.error_code is not None


@dataclass(frozen=True, slots=True)
class BuildResult:
    """A successful build: the module, its size against the target's limit, and the
    command's combined output."""

    project: Project
    module_path: Path
    module_bytes: int
    limit_bytes: int
    duration_s: float
    command: str
    output: str

    @property
    def within_limit(self) -> bool:
        return self.module_bytes <= self.limit_bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "handle": self.project.handle,
            "module": str(self.module_path),
            "module_bytes": self.module_bytes,
            "limit_bytes": self.limit_bytes,
            "within_limit": self.within_limit,
            "duration_s": round(self.duration_s, 3),
            "command": self.command,
        }


def find_project_file(start: str | Path | None = None) -> Path:
    """The `cartwheel.toml` at `start` (a file or a folder) or in the nearest parent.

    Raises:
        ProjectError: PROJECT_NOT_FOUND.
    """
    origin = Path.cwd() if start is None else Path(start)
    origin = origin.resolve()
    if origin.is_file():
        return origin
    if not origin.exists():
        raise ProjectError(f"{origin} does not exist.", code="PROJECT_NOT_FOUND", path=str(origin))
    for folder in (origin, *origin.parents):
        candidate = folder / PROJECT_FILE
        if candidate.is_file():
            return candidate
    raise ProjectError(
        f"No {PROJECT_FILE} in {origin} or its parents. Run the command inside a function "
        "project, pass --path, or create one with `cartwheel fn init NAME --target T`.",
        code="PROJECT_NOT_FOUND",
        path=str(origin),
    )


def load_project(start: str | Path | None = None) -> Project:
    """Load and validate the project at `start` (see `find_project_file`).

    Raises:
        ProjectError: PROJECT_NOT_FOUND, PROJECT_SYNTAX (with the TOML parser's line and
            column), or PROJECT_INVALID naming the `field` to fix.
    """
    config_path = find_project_file(start)
    try:
        data = tomllib.loads(config_path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ProjectError(
            f"{config_path} is not valid TOML: {exc}.", code="PROJECT_SYNTAX", path=str(config_path)
        ) from None
    except UnicodeDecodeError as exc:
        raise ProjectError(
            f"{config_path} is not UTF-8 text ({exc.reason}).",
            code="PROJECT_SYNTAX",
            path=str(config_path),
        ) from None
    return _parse(config_path, data)


def _parse(config_path: Path, data: Mapping[str, Any]) -> Project:
    root = config_path.parent

    def invalid(field: str, problem: str) -> ProjectError:
        return ProjectError(
            f"{config_path}: {field} {problem}.", field=field, path=str(config_path)
        )

    def table(
        parent: Mapping[str, Any], key: str, prefix: str, allowed: frozenset[str]
    ) -> dict[str, Any]:
        value = parent.get(key, {})
        if not isinstance(value, dict):
            raise invalid(prefix, "must be a table")
        _reject_unknown(value, allowed, f"{prefix}.", invalid)
        return value

    def string(
        parent: Mapping[str, Any], key: str, field: str, *, default: str | None = None
    ) -> str:
        value = parent.get(key, default)
        if value is None:
            raise invalid(field, "is required")
        if not isinstance(value, str) or not value.strip():
            raise invalid(field, "must be a non-empty string")
        return value

    def inside(relative: str, field: str) -> Path:
        if Path(relative).is_absolute():
            raise invalid(field, f"must be relative to the project folder, not {relative!r}")
        path = (root / relative).resolve()
        if not path.is_relative_to(root.resolve()):
            raise invalid(field, f"must stay inside the project folder, not {relative!r}")
        return path

    _reject_unknown(data, _TOP_KEYS, "", invalid)
    name = string(data, "name", "name")
    handle = string(data, "handle", "handle")
    if not _HANDLE.match(handle):
        raise invalid(
            "handle",
            f"must be 1-50 lowercase letters, digits and inner hyphens (e.g. 'vip-discount'), "
            f"not {handle!r}",
        )
    description = data.get("description", "")
    if not isinstance(description, str):
        raise invalid("description", "must be a string")

    targeting = table(data, "targeting", "targeting", _TARGETING_KEYS)
    target = string(targeting, "target", "targeting.target")
    try:
        get_target(target)
    except UnknownTargetError as exc:
        raise invalid("targeting.target", f"is not a known target: {exc.message}") from None
    input_query = inside(
        string(targeting, "input_query", "targeting.input_query", default=DEFAULT_INPUT_QUERY),
        "targeting.input_query",
    )
    export = string(targeting, "export", "targeting.export", default=DEFAULT_EXPORT)
    if not _EXPORT.match(export):
        raise invalid("targeting.export", f"is not a valid export name: {export!r}")

    build_table = table(data, "build", "build", _BUILD_KEYS)
    command = build_table.get("command")
    if command is not None and (not isinstance(command, str) or not command.strip()):
        raise invalid("build.command", "must be a non-empty string (or left out)")
    wasm_path = inside(string(build_table, "path", "build.path"), "build.path")

    input_table = table(data, "input", "input", frozenset({"variables"}))
    variables: InputVariables | None = None
    if "variables" in input_table:
        vars_table = table(input_table, "variables", "input.variables", _VARIABLES_KEYS)
        variables = InputVariables(
            namespace=string(vars_table, "namespace", "input.variables.namespace"),
            key=string(vars_table, "key", "input.variables.key"),
        )

    fixtures = inside(string(data, "fixtures", "fixtures", default=DEFAULT_FIXTURES), "fixtures")
    return Project(
        root=root,
        name=name,
        handle=handle,
        description=description,
        target=target,
        input_query_path=input_query,
        export=export,
        build=BuildConfig(command=command, path=wasm_path),
        input_variables=variables,
        fixtures_dir=fixtures,
    )


def _reject_unknown(
    table: Mapping[str, Any],
    allowed: frozenset[str],
    prefix: str,
    invalid: Callable[[str, str], ProjectError],
) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise invalid(
            f"{prefix}{unknown[0]}",
            f"is not a known setting (allowed here: {', '.join(sorted(allowed))})",
        )


def load_fixture(path: Path) -> Fixture:
    """Read one fixture file.

    Raises:
        ProjectError: FIXTURE_INVALID naming the file and the problem.
    """

    def invalid(problem: str) -> ProjectError:
        return ProjectError(f"Fixture {path}: {problem}.", code="FIXTURE_INVALID", path=str(path))

    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise invalid(f"cannot be read as JSON ({exc})") from None
    if not isinstance(data, dict):
        raise invalid("must be a JSON object")
    if "input" not in data:
        raise invalid('lacks "input"')
    if ("output" in data) == ("error" in data):
        raise invalid('needs exactly one of "output" (expected JSON) or "error" ({"code", "logs"})')
    description = data.get("description", "")
    if not isinstance(description, str):
        raise invalid('"description" must be a string')
    error_code: str | None = None
    error_logs: str | None = None
    if "error" in data:
        error = data["error"]
        if not isinstance(error, dict) or not isinstance(error.get("code"), str):
            raise invalid('"error" must be an object with a string "code"')
        error_code = error["code"]
        logs = error.get("logs")
        if logs is not None and not isinstance(logs, str):
            raise invalid('"error.logs" must be a string')
        error_logs = logs
    return Fixture(
        name=path.stem,
        path=path,
        description=description,
        input=data["input"],
        output=data.get("output"),
        error_code=error_code,
        error_logs=error_logs,
    )


def build(
    project: Project,
    *,
    env: Mapping[str, str] | None = None,
    timeout_s: float = DEFAULT_BUILD_TIMEOUT_S,
) -> BuildResult:
    """Run the project's build command in its folder and measure the module.

    `env` adds to (and overrides) the current environment, e.g. a `CARGO_TARGET_DIR`.
    The size is reported, not enforced: callers compare `within_limit`.

    Raises:
        BuildError: BUILD_NOT_CONFIGURED, BUILD_FAILED, BUILD_TIMEOUT, MODULE_NOT_BUILT.
    """
    command = project.build.command
    if command is None:
        raise BuildError(
            f"{project.config_path} has no [build] command. Add one, or build "
            f"{project.wasm_path.name} yourself.",
            code="BUILD_NOT_CONFIGURED",
        )
    started = time.perf_counter()
    try:
        completed = subprocess.run(
            ["/bin/sh", "-c", command],
            cwd=project.root,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            timeout=timeout_s,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise BuildError(
            f"The build did not finish within {timeout_s:g} s: {command}",
            code="BUILD_TIMEOUT",
            command=command,
            output=_tail(exc.output or b""),
        ) from None
    duration = time.perf_counter() - started
    output = completed.stdout.decode("utf-8", errors="replace")
    if completed.returncode != 0:
        raise BuildError(
            f"The build failed with exit status {completed.returncode}: {command}\n"
            f"{_tail(output)}\nFix the error above and run `cartwheel fn build` again.",
            code="BUILD_FAILED",
            command=command,
            exit_status=completed.returncode,
            output=_tail(output),
        )
    if not project.wasm_path.is_file():
        raise BuildError(
            f"The build succeeded but left no module at {project.wasm_path}. Make the "
            "[build] command write it there, or point [build] path at what it writes.",
            code="MODULE_NOT_BUILT",
            command=command,
            path=str(project.wasm_path),
        )
    return BuildResult(
        project=project,
        module_path=project.wasm_path,
        module_bytes=project.wasm_path.stat().st_size,
        limit_bytes=project.limits.module_bytes,
        duration_s=duration,
        command=command,
        output=output,
    )


def _tail(output: str | bytes) -> str:
    text = output.decode("utf-8", errors="replace") if isinstance(output, bytes) else output
    return "\n".join(text.rstrip().splitlines()[-BUILD_LOG_TAIL_LINES:])


@dataclass(frozen=True, slots=True)
class FixtureOutcome:
    """One fixture run against the project's module: the run, and what did not match
    (empty when the fixture passed)."""

    fixture: Fixture
    result: RunResult
    problems: tuple[str, ...]

    @property
    def passed(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.fixture.name,
            "description": self.fixture.description,
            "passed": self.passed,
            "problems": list(self.problems),
            "status": self.result.status.value,
            "error_code": None if self.result.error_code is None else self.result.error_code.value,
            "fuel_consumed": self.result.fuel_consumed,
            "instructions_limit": self.result.limits.instructions,
            "output_bytes": self.result.output_bytes,
            "logs": self.result.logs,
        }


def run_fixtures(
    project: Project,
    *,
    module: CompiledModule | None = None,
    limits: Limits | None = None,
) -> list[FixtureOutcome]:
    """Run every fixture of `project` against its built module (or `module`) under the
    target's limits (or `limits`).

    A fixture with an `output` passes when the run succeeds, prints exactly that JSON
    and the output is valid for the target; one with an `error` passes when the run
    ends with that error code and its logs contain `error.logs`.

    Raises:
        ProjectError: MODULE_NOT_BUILT, FIXTURE_INVALID.
        InvalidModuleError: the module is rejected by the runner.
    """
    run_limits = project.limits if limits is None else limits
    if module is None:
        module = load_module(project.read_wasm(), limits=run_limits, export=project.export)
    outcomes = []
    for fixture in project.fixtures():
        result = run(module, fixture.input_bytes(), run_limits, export=project.export)
        outcomes.append(FixtureOutcome(fixture, result, _problems(project, fixture, result)))
    return outcomes


def _problems(project: Project, fixture: Fixture, result: RunResult) -> tuple[str, ...]:
    if fixture.expects_error:
        problems = []
        code = None if result.error_code is None else result.error_code.value
        if code != fixture.error_code:
            problems.append(f"expected error {fixture.error_code}, got {code or 'success'}")
        if fixture.error_logs is not None and fixture.error_logs not in result.logs:
            problems.append(f"logs do not contain {fixture.error_logs!r}")
        return tuple(problems)
    if not result.ok:
        return (f"expected success, got {result.error_code}: {result.message}",)
    try:
        actual = json.loads(result.output)
    except ValueError:
        return ("the output is not JSON",)
    if actual != fixture.output:
        return (
            "the output differs from the expected output: "
            f"expected {_clip(fixture.output)}, got {_clip(actual)}",
        )
    try:
        validate_output(project.target, result.output, input=fixture.input)
    except InvalidOutputError as exc:
        return (exc.message,)
    return ()


def _clip(value: Any, limit: int = 300) -> str:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= limit else text[: limit - 1] + "…"
