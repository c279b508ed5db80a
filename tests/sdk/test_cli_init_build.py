"""`cartwheel fn init`, `build` and `info` through the real `cartwheel` entry point."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import wasmtime
from click.testing import CliRunner, Result

from cartwheel.cli import main
from functions_sdk.apis import TARGETS, get_target
from functions_sdk.cli import EXIT_FUNCTION_FAILED, EXIT_INVALID_INPUT, EXIT_OK, EXIT_USAGE
from functions_sdk.output import validate_output
from functions_sdk.project import load_project
from functions_sdk.query import compile_query
from functions_sdk.runner import load_module, run

DISCOUNT = "cart.lines.discounts.generate.run"
DELIVERY = "cart.delivery-options.transform.run"


def invoke(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(main, ["fn", *args], env=env, catch_exceptions=False)


def invoke_json(*args: str, code: int = EXIT_OK, env: dict[str, str] | None = None) -> Any:
    result = invoke(*args, "--json", env=env)
    assert result.exit_code == code, result.output
    return json.loads(result.stdout)


def init(tmp_path: Path, name: str, target: str, lang: str) -> Path:
    folder = tmp_path / name
    data = invoke_json("init", name, "--target", target, "--lang", lang, "--path", str(folder))
    assert data["ok"] is True
    assert data["root"] == str(folder)
    return folder


def run_fixtures(folder: Path) -> int:
    """Run every fixture of the project at `folder` against its built module."""
    project = load_project(folder)
    module = load_module(project.read_wasm(), limits=project.limits, export=project.export)
    fixtures = project.fixtures()
    for fixture in fixtures:
        result = run(module, fixture.input_bytes(), project.limits, export=project.export)
        if fixture.expects_error:
            assert result.error_code == fixture.error_code
            continue
        assert result.ok, f"{fixture.name}: {result.message}\n{result.logs}"
        assert json.loads(result.output) == fixture.output
        validate_output(project.target, result.output, input=fixture.input)
    return len(fixtures)


def test_init_build_info_run_for_the_c_delivery_customization(tmp_path: Path) -> None:
    folder = tmp_path / "remote"
    created = invoke_json(
        "init", "Remote delivery", "-t", DELIVERY, "--lang", "c", "--path", str(folder)
    )
    assert created["handle"] == "remote-delivery"
    assert (created["target"], created["language"], created["starter"]) == (
        DELIVERY,
        "c",
        "example",
    )
    assert {"cartwheel.toml", "input.graphql", "src/main.c", "src/json.c", "src/json.h"} <= set(
        created["files"]
    )

    before = invoke_json("info", "--path", str(folder))
    assert before["handle"] == "remote-delivery"
    assert before["target"] == DELIVERY
    assert before["module"] == {
        "path": str(folder / "remote-delivery.wasm"),
        "built": False,
        "bytes": None,
        "limit_bytes": 256_000,
    }
    assert (before["input_query"]["bytes"], before["input_query"]["cost"]) == (384, 8)
    assert before["input_query"]["error"] is None
    assert len(before["fixtures"]["names"]) == 9

    built = invoke_json("build", "--path", str(folder))
    assert built["ok"] is True
    assert built["within_limit"] is True
    assert 10_000 < built["module_bytes"] <= built["limit_bytes"] == 256_000
    assert built["module"] == str(folder / "remote-delivery.wasm")
    assert (built["abi"], built["entry"]) == ("wasi", "_start")
    assert built["imports"] == [
        f"wasi_snapshot_preview1.{name}"
        for name in ("fd_close", "fd_fdstat_get", "fd_read", "fd_seek", "fd_write", "proc_exit")
    ]

    after = invoke_json("info", "--path", str(folder))
    assert after["module"]["built"] is True
    assert after["module"]["bytes"] == built["module_bytes"]
    assert run_fixtures(folder) == 9


@pytest.mark.parametrize("target", [t.name for t in TARGETS])
@pytest.mark.parametrize("lang", ["rust", "c"])
def test_every_target_and_language_scaffolds_a_valid_project(
    tmp_path: Path, target: str, lang: str
) -> None:
    folder = init(tmp_path, "Starter", target, lang)
    project = load_project(folder)
    assert project.target == target
    assert project.wasm_path == folder / "starter.wasm"
    query = compile_query(get_target(target), project.read_input_query())
    assert query.cost <= 30
    fixtures = project.fixtures()
    assert fixtures
    for fixture in fixtures:
        if fixture.output is not None:
            validate_output(target, fixture.output, input=fixture.input)
    text = (folder / "cartwheel.toml").read_text()
    assert "__CARTWHEEL" not in text
    for path in folder.rglob("*"):
        if path.is_file():
            assert "__CARTWHEEL" not in path.read_text(), path


def test_generic_c_starter_builds_and_runs(tmp_path: Path) -> None:
    folder = init(tmp_path, "Pay rules", "cart.payment-methods.transform.run", "c")
    assert invoke_json("build", "--path", str(folder))["within_limit"] is True
    assert run_fixtures(folder) == 1
    # Its input query runs on a real cart and the module accepts what it yields.
    project = load_project(folder)
    query = compile_query(get_target(project.target), project.read_input_query())
    snapshot = json.loads((Path(__file__).parents[2] / "examples/carts/small.json").read_text())
    result = run(project.read_wasm(), query.execute(snapshot))
    assert result.ok, result.logs
    assert result.output == b'{"operations":[]}'
    assert "items, configured: false" in result.logs


@pytest.mark.slow
def test_generic_rust_starter_builds_and_runs(tmp_path: Path) -> None:
    folder = init(tmp_path, "Validation starter", "cart.validations.generate.run", "rust")
    env = {"CARGO_TARGET_DIR": str(tmp_path / "target")}
    built = invoke_json("build", "--path", str(folder), env=env)
    assert built["within_limit"] is True
    assert run_fixtures(folder) == 1


def test_init_names_and_human_output(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("init", "Crème brûlée VIP!", "--target", DISCOUNT)
    assert result.exit_code == EXIT_OK, result.output
    assert "Created" in result.stdout
    assert "creme-brulee-vip" in result.stdout
    project = load_project(tmp_path / "creme-brulee-vip")
    assert project.name == "Crème brûlée VIP!"
    assert (tmp_path / "creme-brulee-vip" / "Cargo.toml").is_file()
    assert (tmp_path / "creme-brulee-vip" / ".cargo" / "config.toml").is_file()


def test_init_errors(tmp_path: Path) -> None:
    folder = init(tmp_path, "Taken", DISCOUNT, "rust")
    data = invoke_json(
        "init", "Taken", "--target", DISCOUNT, "--path", str(folder), code=EXIT_INVALID_INPUT
    )
    assert data["ok"] is False
    assert data["error"]["code"] == "INIT_TARGET_EXISTS"
    assert str(folder) in data["error"]["message"]

    data = invoke_json(
        "init", "!!!", "--target", DISCOUNT, "--path", str(tmp_path / "x"), code=EXIT_INVALID_INPUT
    )
    assert data["error"]["code"] == "INIT_INVALID_NAME"

    unknown_target = invoke("init", "x", "--target", "cart.lines.discount.run")
    assert unknown_target.exit_code == EXIT_USAGE
    assert "cart.lines.discounts.generate.run" in unknown_target.output
    unknown_lang = invoke("init", "x", "--target", DISCOUNT, "--lang", "cobol")
    assert unknown_lang.exit_code == EXIT_USAGE

    human = invoke("init", "Taken", "--target", DISCOUNT, "--path", str(folder))
    assert human.exit_code == EXIT_INVALID_INPUT
    assert "INIT_TARGET_EXISTS" in human.stderr
    assert human.stdout == ""


def test_failed_build_shows_the_compiler_error(tmp_path: Path) -> None:
    folder = init(tmp_path, "Broken", DELIVERY, "c")
    main_c = folder / "src" / "main.c"
    main_c.write_text(main_c.read_text().replace("return 0;", "return undefined_name;"))
    data = invoke_json("build", "--path", str(folder), code=EXIT_INVALID_INPUT)
    assert data["error"]["code"] == "BUILD_FAILED"
    assert data["error"]["exit_status"] != 0
    assert "undefined_name" in data["error"]["output"]
    assert "cartwheel fn build" in data["error"]["message"]

    human = invoke("build", "--path", str(folder))
    assert human.exit_code == EXIT_INVALID_INPUT
    assert "BUILD_FAILED" in human.stderr
    assert "undefined_name" in human.stderr


def test_oversized_module_fails_the_build(tmp_path: Path) -> None:
    folder = init(tmp_path, "Huge", DELIVERY, "c")
    config = folder / "cartwheel.toml"
    lines = config.read_text().splitlines()
    lines = [
        'command = "head -c 300000 /dev/zero > huge.wasm"' if line.startswith("command") else line
        for line in lines
    ]
    config.write_text("\n".join(lines) + "\n")
    data = invoke_json("build", "--path", str(folder), code=EXIT_INVALID_INPUT)
    assert data["error"]["code"] == "MODULE_TOO_LARGE"
    assert (data["error"]["module_bytes"], data["error"]["limit_bytes"]) == (300_000, 256_000)
    assert "300,000 bytes" in data["error"]["message"]


def test_commands_find_the_project_from_a_subfolder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = init(tmp_path, "Nested", DELIVERY, "c")
    monkeypatch.chdir(folder / "src")
    built = invoke("build")
    assert built.exit_code == EXIT_OK, built.output
    assert "Built nested" in built.stdout
    assert "256,000 B" in built.stdout
    info = invoke("info")
    assert info.exit_code == EXIT_OK, info.output
    assert DELIVERY in info.stdout
    assert "metafield cartwheel.function-configuration" in info.stdout
    assert "nested.wasm" in info.stdout


def test_no_project_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for command in ("build", "info"):
        data = invoke_json(command, code=EXIT_INVALID_INPUT)
        assert data["error"]["code"] == "PROJECT_NOT_FOUND"
        assert "cartwheel fn init" in data["error"]["message"]


def test_info_reports_an_input_query_that_deploy_would_reject(tmp_path: Path) -> None:
    folder = init(tmp_path, "Costly", DISCOUNT, "rust")
    (folder / "input.graphql").write_text("query Input { cart { lines { nope } } }\n")
    data = invoke_json("info", "--path", str(folder))
    error = data["input_query"]["error"]
    assert error["code"] == "INPUT_QUERY_INVALID"
    assert "nope" in error["message"]
    human = invoke("info", "--path", str(folder))
    assert human.exit_code == EXIT_OK
    assert "INPUT_QUERY_INVALID" in human.stdout

    (folder / "cartwheel.toml").write_text('name = "x"\nhandle = "Bad Handle"\n')
    data = invoke_json("info", "--path", str(folder), code=EXIT_INVALID_INPUT)
    assert (data["error"]["code"], data["error"]["field"]) == ("PROJECT_INVALID", "handle")


def test_fn_test_runs_the_fixtures(tmp_path: Path) -> None:
    folder = init(tmp_path, "Tested", DELIVERY, "c")
    not_built = invoke_json("test", "--path", str(folder), code=EXIT_INVALID_INPUT)
    assert not_built["error"]["code"] == "MODULE_NOT_BUILT"
    invoke_json("build", "--path", str(folder))

    data = invoke_json("test", "--path", str(folder))
    assert (data["ok"], data["passed"], data["failed"]) == (True, 9, 0)
    by_name = {f["name"]: f for f in data["fixtures"]}
    assert by_name["invalid-configuration"]["error_code"] == "NONZERO_EXIT"
    assert by_name["remote-province"]["fuel_consumed"] > 0

    fixture = folder / "fixtures" / "remote-province.json"
    case = json.loads(fixture.read_text())
    case["output"]["operations"].pop()
    fixture.write_text(json.dumps(case))
    data = invoke_json("test", "--path", str(folder), code=EXIT_FUNCTION_FAILED)
    assert (data["ok"], data["passed"], data["failed"]) == (False, 8, 1)
    (failed,) = [f for f in data["fixtures"] if not f["passed"]]
    assert failed["name"] == "remote-province"
    assert failed["problems"][0].startswith("the output differs")

    human = invoke("test", "--path", str(folder))
    assert human.exit_code == EXIT_FUNCTION_FAILED
    assert "FAIL" in human.stdout
    assert "8 passed, 1 failed (tested)" in human.stdout


def test_build_rejects_a_module_the_sandbox_would_refuse(tmp_path: Path) -> None:
    folder = init(tmp_path, "Escape", DELIVERY, "c")
    # The "toolchain" copies a module that imports `env.system` into place (built here
    # with wasmtime's own WAT parser, so the test needs no wabt on the machine).
    (folder / "escape.bin").write_bytes(
        wasmtime.wat2wasm(
            '(module (import "env" "system" (func (param i32))) (func (export "_start")))'
        )
    )
    config = folder / "cartwheel.toml"
    lines = [
        'command = "cp escape.bin escape.wasm"' if line.startswith("command") else line
        for line in config.read_text().splitlines()
    ]
    config.write_text("\n".join(lines) + "\n")
    data = invoke_json("build", "--path", str(folder), code=EXIT_INVALID_INPUT)
    assert data["error"]["code"] == "FORBIDDEN_IMPORT"
    assert "`env.system`" in data["error"]["message"]
