"""functions_sdk.project: loading and validating cartwheel.toml, fixtures, the build."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from functions_sdk.project import (
    PROJECT_FILE,
    BuildError,
    InputVariables,
    ProjectError,
    build,
    find_project_file,
    load_fixture,
    load_project,
    run_fixtures,
)

ROOT = Path(__file__).resolve().parents[2]
DISCOUNT = ROOT / "examples" / "discount-function"
DELIVERY = ROOT / "examples" / "delivery-customization"

MINIMAL = """\
name = "Minimal"
handle = "minimal"

[targeting]
target = "cart.validations.generate.run"

[build]
command = "printf '\\\\0asm\\\\1\\\\0\\\\0\\\\0' > fn.wasm"
path = "fn.wasm"
"""


def write_project(folder: Path, text: str = MINIMAL) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / PROJECT_FILE).write_text(text)
    (folder / "input.graphql").write_text("query Input { cart { lines { id } } }\n")
    return folder


def error_of(exc_info: pytest.ExceptionInfo[ProjectError]) -> tuple[str, str | None]:
    return exc_info.value.code, exc_info.value.details.get("field")


def test_discount_example_loads_with_every_setting() -> None:
    project = load_project(DISCOUNT)
    assert project.root == DISCOUNT
    assert project.name == "Tiered VIP discount"
    assert project.handle == "tiered-vip-discount"
    assert project.target == "cart.lines.discounts.generate.run"
    assert project.input_query_path == DISCOUNT / "input.graphql"
    assert project.export == "_start"
    assert project.build.command is not None
    assert "/usr/bin/cargo build --release --target wasm32-wasi" in project.build.command
    assert project.wasm_path == DISCOUNT / "discount-function.wasm"
    assert project.input_variables == InputVariables("cartwheel", "function-configuration")
    assert project.fixtures_dir == DISCOUNT / "fixtures"
    assert project.limits.module_bytes == 256_000
    assert project.read_wasm()[:4] == b"\0asm"
    assert "query Input(" in project.read_input_query()
    data = project.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["input_variables"] == {"namespace": "cartwheel", "key": "function-configuration"}


def test_defaults_apply_when_settings_are_left_out(tmp_path: Path) -> None:
    project = load_project(write_project(tmp_path))
    assert project.input_query_path == tmp_path / "input.graphql"
    assert project.export == "_start"
    assert project.description == ""
    assert project.input_variables is None
    assert project.fixtures_dir == tmp_path / "fixtures"
    assert project.fixtures() == []


def test_project_is_found_from_a_subfolder_or_the_file_itself(tmp_path: Path) -> None:
    write_project(tmp_path)
    nested = tmp_path / "src" / "deep"
    nested.mkdir(parents=True)
    assert find_project_file(nested) == tmp_path / PROJECT_FILE
    assert load_project(nested).root == tmp_path
    assert load_project(tmp_path / PROJECT_FILE).handle == "minimal"


def test_missing_project_says_how_to_create_one(tmp_path: Path) -> None:
    with pytest.raises(ProjectError) as exc_info:
        load_project(tmp_path)
    assert exc_info.value.code == "PROJECT_NOT_FOUND"
    assert "cartwheel fn init" in exc_info.value.message
    with pytest.raises(ProjectError) as exc_info:
        load_project(tmp_path / "nowhere")
    assert exc_info.value.code == "PROJECT_NOT_FOUND"


def test_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    write_project(tmp_path, 'name = "x"\nhandle = \n')
    with pytest.raises(ProjectError) as exc_info:
        load_project(tmp_path)
    assert exc_info.value.code == "PROJECT_SYNTAX"
    assert "line 2" in exc_info.value.message


@pytest.mark.parametrize(
    ("old", "new", "field", "hint"),
    [
        ('name = "Minimal"\n', "", "name", "is required"),
        ('name = "Minimal"', "name = 3", "name", "non-empty string"),
        ('handle = "minimal"', 'handle = "Not A Handle"', "handle", "lowercase"),
        ('handle = "minimal"', 'handle = "-edge"', "handle", "inner hyphens"),
        (
            'target = "cart.validations.generate.run"',
            'target = "cart.lines.discount.run"',
            "targeting.target",
            "cart.lines.discounts.generate.run",
        ),
        ("[targeting]\n", "[targeting]\nexport = 'bad name'\n", "targeting.export", "export"),
        (
            "[targeting]\n",
            "[targeting]\ninput_query = '/etc/passwd'\n",
            "targeting.input_query",
            "relative",
        ),
        ('path = "fn.wasm"', 'path = "../fn.wasm"', "build.path", "inside the project"),
        ('path = "fn.wasm"\n', "", "build.path", "is required"),
        ('command = "', 'comand = "', "build.comand", "allowed here: command, path"),
        ('name = "Minimal"', 'name = "Minimal"\nwasm = "x"', "wasm", "not a known setting"),
        ('handle = "minimal"', 'handle = "minimal"\ninput = 1', "input", "must be a table"),
        (
            "[build]",
            "[input.variables]\nnamespace = 'cartwheel'\n[build]",
            "input.variables.key",
            "is required",
        ),
        ('name = "Minimal"', 'name = "Minimal"\nfixtures = ""', "fixtures", "non-empty"),
    ],
)
def test_invalid_settings_name_the_field(
    tmp_path: Path, old: str, new: str, field: str, hint: str
) -> None:
    assert old in MINIMAL
    write_project(tmp_path, MINIMAL.replace(old, new, 1))
    with pytest.raises(ProjectError) as exc_info:
        load_project(tmp_path)
    assert error_of(exc_info) == ("PROJECT_INVALID", field)
    assert hint in exc_info.value.message
    assert str(tmp_path / PROJECT_FILE) in exc_info.value.message


def test_unbuilt_module_and_missing_query_say_what_to_do(tmp_path: Path) -> None:
    project = load_project(write_project(tmp_path))
    with pytest.raises(ProjectError) as exc_info:
        project.read_wasm()
    assert exc_info.value.code == "MODULE_NOT_BUILT"
    assert "cartwheel fn build" in exc_info.value.message
    (tmp_path / "input.graphql").unlink()
    with pytest.raises(ProjectError) as exc_info:
        project.read_input_query()
    assert exc_info.value.code == "INPUT_QUERY_MISSING"
    assert "input.graphql" in exc_info.value.message


def test_example_fixtures_load_with_outputs_and_errors() -> None:
    fixtures = {f.name: f for f in load_project(DISCOUNT).fixtures()}
    assert len(fixtures) >= 10
    vip = fixtures["vip-bonus"]
    assert not vip.expects_error
    assert vip.output is not None
    assert vip.output["operations"][0]["productDiscountsAdd"]["selectionStrategy"] == "FIRST"
    assert json.loads(vip.input_bytes()) == vip.input
    invalid = fixtures["invalid-configuration"]
    assert invalid.expects_error
    assert (invalid.error_code, invalid.output) == ("NONZERO_EXIT", None)
    assert invalid.error_logs == "tiers[0].percentage must be within 0-100"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("{not json", "cannot be read as JSON"),
        ("[1, 2]", "must be a JSON object"),
        ('{"output": {}}', 'lacks "input"'),
        ('{"input": {}}', "exactly one of"),
        ('{"input": {}, "output": {}, "error": {"code": "X"}}', "exactly one of"),
        ('{"input": {}, "error": "NONZERO_EXIT"}', 'string "code"'),
        ('{"input": {}, "error": {"code": "X", "logs": 3}}', '"error.logs"'),
        ('{"input": {}, "output": {}, "description": 1}', '"description"'),
    ],
)
def test_malformed_fixtures_are_rejected(tmp_path: Path, content: str, problem: str) -> None:
    path = tmp_path / "case.json"
    path.write_text(content)
    with pytest.raises(ProjectError) as exc_info:
        load_fixture(path)
    assert exc_info.value.code == "FIXTURE_INVALID"
    assert problem in exc_info.value.message
    assert "case.json" in exc_info.value.message


def test_build_runs_the_command_in_the_project_folder(tmp_path: Path) -> None:
    project = load_project(write_project(tmp_path))
    result = build(project)
    assert result.module_path == tmp_path / "fn.wasm"
    assert result.module_bytes == 8
    assert result.limit_bytes == 256_000
    assert result.within_limit
    assert result.to_dict()["module_bytes"] == 8


def test_build_passes_extra_environment(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "printf '\\\\0asm\\\\1\\\\0\\\\0\\\\0' > fn.wasm", 'printf %s \\"$MARKER\\" > fn.wasm'
    )
    project = load_project(write_project(tmp_path, text))
    build(project, env={"MARKER": "from-env"})
    assert (tmp_path / "fn.wasm").read_text() == "from-env"


def test_failed_build_reports_status_and_output_tail(tmp_path: Path) -> None:
    text = MINIMAL.replace(
        "printf '\\\\0asm\\\\1\\\\0\\\\0\\\\0' > fn.wasm",
        "seq 1 100; echo 'error: cannot find value `x`' >&2; exit 7",
    )
    project = load_project(write_project(tmp_path, text))
    with pytest.raises(BuildError) as exc_info:
        build(project)
    error = exc_info.value
    assert error.code == "BUILD_FAILED"
    assert error.details["exit_status"] == 7
    tail = error.details["output"]
    assert tail.endswith("error: cannot find value `x`")
    assert "\n1\n" not in f"\n{tail}\n"
    assert len(tail.splitlines()) == 40
    assert "exit status 7" in error.message


def test_build_without_module_or_command_or_in_time(tmp_path: Path) -> None:
    no_module = load_project(write_project(tmp_path / "a", MINIMAL.replace("> fn.wasm", "")))
    with pytest.raises(BuildError) as exc_info:
        build(no_module)
    assert exc_info.value.code == "MODULE_NOT_BUILT"

    lines = MINIMAL.splitlines(keepends=True)
    no_command = "".join(line for line in lines if not line.startswith("command"))
    with pytest.raises(BuildError) as exc_info:
        build(load_project(write_project(tmp_path / "b", no_command)))
    assert exc_info.value.code == "BUILD_NOT_CONFIGURED"

    slow = MINIMAL.replace("printf '\\\\0asm\\\\1\\\\0\\\\0\\\\0' > fn.wasm", "sleep 5")
    with pytest.raises(BuildError) as exc_info:
        build(load_project(write_project(tmp_path / "c", slow)), timeout_s=0.3)
    assert exc_info.value.code == "BUILD_TIMEOUT"


def test_delivery_example_builds_from_its_own_command(tmp_path: Path) -> None:
    # The C build takes well under a second: run the real recipe on a copy.
    import shutil

    copy = tmp_path / "delivery"
    shutil.copytree(DELIVERY, copy)
    (copy / "delivery-customization.wasm").unlink()
    result = build(load_project(copy))
    assert result.within_limit
    assert result.module_bytes == (DELIVERY / "delivery-customization.wasm").stat().st_size


def test_example_fixtures_all_pass() -> None:
    for example in (DISCOUNT, DELIVERY):
        outcomes = run_fixtures(load_project(example))
        assert outcomes
        assert [o.fixture.name for o in outcomes if not o.passed] == []
        for outcome in outcomes:
            data = outcome.to_dict()
            assert data["passed"] is True
            assert data["instructions_limit"] == 11_000_000
            assert data["fuel_consumed"] > 0


def test_fixture_mismatches_are_reported(tmp_path: Path) -> None:
    import shutil

    copy = tmp_path / "discount"
    shutil.copytree(DISCOUNT, copy, ignore=shutil.ignore_patterns("target"))
    fixtures = copy / "fixtures"
    vip = json.loads((fixtures / "vip-bonus.json").read_text())
    vip["output"]["operations"][0]["productDiscountsAdd"]["candidates"][0]["value"] = {
        "percentage": {"value": "50"}
    }
    (fixtures / "vip-bonus.json").write_text(json.dumps(vip))
    empty = json.loads((fixtures / "empty-cart.json").read_text())
    del empty["output"]
    empty["error"] = {"code": "NONZERO_EXIT", "logs": "boom"}
    (fixtures / "empty-cart.json").write_text(json.dumps(empty))
    invalid = json.loads((fixtures / "invalid-configuration.json").read_text())
    invalid["error"]["logs"] = "something else"
    (fixtures / "invalid-configuration.json").write_text(json.dumps(invalid))
    tier = json.loads((fixtures / "tier-reached.json").read_text())
    tier["input"]["discount"]["metafield"]["jsonValue"]["tiers"][0]["percentage"] = "101"
    (fixtures / "tier-reached.json").write_text(json.dumps(tier))

    failed = {o.fixture.name: o.problems for o in run_fixtures(load_project(copy)) if not o.passed}
    assert set(failed) == {"vip-bonus", "empty-cart", "invalid-configuration", "tier-reached"}
    assert failed["vip-bonus"][0].startswith("the output differs from the expected output")
    assert '"value":"50"' in failed["vip-bonus"][0]
    assert failed["empty-cart"] == (
        "expected error NONZERO_EXIT, got success",
        "logs do not contain 'boom'",
    )
    assert failed["invalid-configuration"] == ("logs do not contain 'something else'",)
    assert failed["tier-reached"][0].startswith("expected success, got NONZERO_EXIT")
