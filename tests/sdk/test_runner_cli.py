"""`cartwheel fn run` through the real entry point (`cartwheel.cli:main`, and the
installed console script), `--json` parsed back into a `RunResult`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import wasmtime
from click.testing import CliRunner

from cartwheel.cli import main
from functions_sdk.runner import ErrorCode, RunResult, RunStatus

WASM_DIR = Path(__file__).parent / "wasm"
DISCOUNT = WASM_DIR / "discount_wasi.wasm"
CARTWHEEL = Path(sys.executable).parent / "cartwheel"
INPUT = {
    "cart": {
        "lines": [
            {"id": "gid://cartwheel/CartLine/1", "quantity": 1},
            {"id": "gid://cartwheel/CartLine/2", "quantity": 5},
        ]
    },
    "discount": {"metafield": {"jsonValue": {"percentage": 25, "minimumQuantity": 2}}},
}


@pytest.fixture
def input_file(tmp_path: Path) -> Path:
    path = tmp_path / "input.json"
    path.write_bytes(orjson.dumps(INPUT))
    return path


@pytest.fixture
def loop_wasm(tmp_path: Path) -> Path:
    path = tmp_path / "loop.wasm"
    path.write_bytes(
        wasmtime.wat2wasm(
            '(module (memory (export "memory") 1) (func (export "_start") (loop $l (br $l))))'
        )
    )
    return path


def invoke(*args: str, stdin: bytes | None = None) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["fn", "run", *args], input=stdin, catch_exceptions=False)
    return result.exit_code, result.stdout


def test_json_report_parses_back_into_a_run_result(input_file: Path) -> None:
    code, out = invoke("--wasm", str(DISCOUNT), "--input", str(input_file), "--json")
    assert code == 0
    document = orjson.loads(out)
    result = RunResult.from_dict(document)
    assert result.status is RunStatus.SUCCEEDED
    assert document["ok"] is True
    assert orjson.loads(document["input"]) == INPUT
    candidates = orjson.loads(result.output)["operations"][0]["productDiscountsAdd"]["candidates"]
    assert candidates[0]["targets"] == [{"cartLine": {"id": "gid://cartwheel/CartLine/2"}}]
    assert result.logs.startswith("discount: ")
    assert result.module_bytes == DISCOUNT.stat().st_size
    assert result.fuel_consumed is not None
    assert result.fuel_consumed > 0


def test_input_from_stdin(input_file: Path) -> None:
    code, out = invoke(
        "--wasm", str(DISCOUNT), "--input", "-", "--json", stdin=input_file.read_bytes()
    )
    assert code == 0
    assert RunResult.from_dict(orjson.loads(out)).ok


def test_failed_function_exits_1_with_limit_overrides_applied(
    loop_wasm: Path, input_file: Path
) -> None:
    code, out = invoke(
        "--wasm", str(loop_wasm), "--input", str(input_file), "--json",
        "--instructions", "5000", "--memory", "2MB", "--stack", "256KiB", "--timeout-ms", "800",
    )  # fmt: skip
    assert code == 1
    result = RunResult.from_dict(orjson.loads(out))
    assert result.error_code is ErrorCode.INSTRUCTION_LIMIT_EXCEEDED
    assert result.fuel_consumed == 5000
    assert result.limits.instructions == 5000
    assert result.limits.linear_memory_bytes == 2_000_000
    assert result.limits.stack_bytes == 262_144
    assert result.limits.timeout_ms == 800


def test_scale_multiplies_instruction_input_and_output_limits(input_file: Path) -> None:
    code, out = invoke(
        "--wasm", str(DISCOUNT), "--input", str(input_file), "--json", "--scale", "2.5"
    )
    assert code == 0
    limits = RunResult.from_dict(orjson.loads(out)).limits
    assert (limits.instructions, limits.input_bytes, limits.output_bytes) == (
        27_500_000,
        320_000,
        50_000,
    )


def test_invalid_module_exits_3(tmp_path: Path, input_file: Path) -> None:
    bad = tmp_path / "bad.wasm"
    bad.write_bytes(b"\0asm\x01\0\0\0garbage")
    code, out = invoke("--wasm", str(bad), "--input", str(input_file), "--json")
    assert code == 3
    assert RunResult.from_dict(orjson.loads(out)).error_code is ErrorCode.INVALID_MODULE


def test_forbidden_import_exits_3_naming_it(tmp_path: Path, input_file: Path) -> None:
    wasm = tmp_path / "system.wasm"
    wasm.write_bytes(
        wasmtime.wat2wasm(
            '(module (import "env" "system" (func (param i32) (result i32)))'
            ' (memory (export "memory") 1) (func (export "_start")))'
        )
    )
    code, out = invoke("--wasm", str(wasm), "--input", str(input_file))
    assert code == 3
    assert "env.system" in out
    assert "INVALID_MODULE" in out


def test_input_that_is_not_json_exits_3(tmp_path: Path) -> None:
    path = tmp_path / "input.json"
    path.write_text("not json")
    code, out = invoke("--wasm", str(DISCOUNT), "--input", str(path), "--json")
    assert code == 3
    assert orjson.loads(out)["error"]["code"] == "INVALID_INPUT"


def test_human_report_shows_input_logs_output_and_flags_limits(
    loop_wasm: Path, input_file: Path
) -> None:
    code, out = invoke("--wasm", str(DISCOUNT), "--input", str(input_file))
    assert code == 0
    for heading in ("Input", "Logs", "Output", "Resource usage"):
        assert heading in out
    for row in ("Instructions", "Linear memory", "Input size", "Output size", "Module size"):
        assert row in out
    assert "11,000,000" in out
    assert "over limit" not in out
    assert "succeeded" in out

    code, out = invoke(
        "--wasm", str(loop_wasm), "--input", str(input_file), "--instructions", "1000"
    )
    assert code == 1
    assert "over limit" in out
    assert "INSTRUCTION_LIMIT_EXCEEDED" in out


def test_usage_errors_exit_2(input_file: Path) -> None:
    code, _ = invoke("--wasm", str(DISCOUNT))
    assert code == 2
    code, _ = invoke("--wasm", str(DISCOUNT), "--input", str(input_file), "--cart", "x.json")
    assert code == 2


def test_cart_through_the_input_query_and_output_validation(tmp_path: Path) -> None:
    query = tmp_path / "input.graphql"
    query.write_text(
        "query Input {\n  cart { lines { id quantity } }\n"
        '  discount { metafield(namespace: "cartwheel", key: "config") { jsonValue } }\n}\n'
    )
    owner = tmp_path / "owner.json"
    config = '{"percentage": 20, "minimumQuantity": 2}'
    owner.write_bytes(
        orjson.dumps(
            {
                "metafields": [
                    {"namespace": "cartwheel", "key": "config", "type": "json", "value": config}
                ]
            }
        )
    )
    cart = Path(__file__).resolve().parents[2] / "examples" / "carts" / "small.json"
    code, out = invoke(
        "--wasm", str(DISCOUNT), "--cart", str(cart), "--query", str(query),
        "--target", "cart.lines.discounts.generate.run", "--owner", str(owner), "--json",
    )  # fmt: skip
    assert code == 0, out
    document = orjson.loads(out)
    result = RunResult.from_dict(document)
    assert result.ok
    sent = orjson.loads(document["input"])
    assert sent["discount"] == {
        "metafield": {"jsonValue": {"percentage": 20, "minimumQuantity": 2}}
    }
    eligible = [line["id"] for line in sent["cart"]["lines"] if line["quantity"] >= 2]
    targets = orjson.loads(result.output)["operations"][0]["productDiscountsAdd"]["candidates"][0][
        "targets"
    ]
    assert [t["cartLine"]["id"] for t in targets] == eligible


def test_output_that_breaks_the_target_schema_fails_with_paths(tmp_path: Path) -> None:
    wasm = tmp_path / "wrong.wasm"
    wasm.write_bytes(
        wasmtime.wat2wasm(
            '(module (import "wasi_snapshot_preview1" "fd_write"'
            " (func $w (param i32 i32 i32 i32) (result i32)))"
            ' (memory (export "memory") 1)'
            ' (data (i32.const 64) "{\\"operations\\": [{\\"nope\\": 1}]}")'
            ' (func (export "_start") (i32.store (i32.const 0) (i32.const 64))'
            " (i32.store (i32.const 4) (i32.const 29))"
            " (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"
        )
    )
    query = tmp_path / "input.graphql"
    query.write_text("query Input { cart { lines { id } } }")
    cart = Path(__file__).resolve().parents[2] / "examples" / "carts" / "small.json"
    code, out = invoke(
        "--wasm", str(wasm), "--cart", str(cart), "--query", str(query),
        "--target", "cart.lines.discounts.generate.run", "--json",
    )  # fmt: skip
    assert code == 1
    document = orjson.loads(out)
    assert RunResult.from_dict(document).error_code is ErrorCode.INVALID_OUTPUT
    assert document["output_errors"][0]["path"].startswith("$.operations[0]")


def test_installed_console_script(input_file: Path) -> None:
    done = subprocess.run(
        [
            str(CARTWHEEL),
            "fn",
            "run",
            "--wasm",
            str(DISCOUNT),
            "--input",
            str(input_file),
            "--json",
        ],
        capture_output=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert RunResult.from_dict(orjson.loads(done.stdout)).ok


VARIABLES_QUERY = """query Input($ids: [ID!]!) {
  cart {
    lines {
      id
      quantity
      merchandise { ... on ProductVariant { product { inAnyCollection(ids: $ids) } } }
    }
  }
}
"""


def test_variables_feed_the_input_query(tmp_path: Path) -> None:
    query = tmp_path / "input.graphql"
    query.write_text(VARIABLES_QUERY)
    variables = tmp_path / "variables.json"
    variables.write_text('{"ids": ["gid://cartwheel/Collection/1"]}')
    cart = Path(__file__).resolve().parents[2] / "examples" / "carts" / "small.json"
    args = ["--wasm", str(DISCOUNT), "--cart", str(cart), "--query", str(query)]
    args += ["--target", "cart.lines.discounts.generate.run", "--json"]

    code, out = invoke(*args, "--variables", str(variables))
    assert code == 0, out
    lines = orjson.loads(orjson.loads(out)["input"])["cart"]["lines"]
    assert [line["merchandise"]["product"]["inAnyCollection"] for line in lines] == [
        True,
        False,
        False,
    ]

    variables.write_text("{}")  # `$ids` is non-null: a missing key is an invalid value
    code, out = invoke(*args, "--variables", str(variables))
    assert code == 3
    assert orjson.loads(out)["error"]["code"] == "INVALID_VARIABLE_VALUE"


def test_an_invalid_input_query_exits_3_with_its_code(tmp_path: Path) -> None:
    query = tmp_path / "input.graphql"
    query.write_text("query { cart { nope } }")
    cart = Path(__file__).resolve().parents[2] / "examples" / "carts" / "small.json"
    code, out = invoke(
        "--wasm", str(DISCOUNT), "--cart", str(cart), "--query", str(query),
        "--target", "cart.lines.discounts.generate.run", "--json",
    )  # fmt: skip
    assert code == 3
    error = orjson.loads(out)["error"]
    assert error["code"] == "INPUT_QUERY_INVALID"
    assert "nope" in error["message"]


def test_limits_the_runner_cannot_enforce_are_usage_errors(input_file: Path) -> None:
    # A wasm stack above 2 MiB would abort the process inside wasmtime.
    result = CliRunner().invoke(
        main, ["fn", "run", "--wasm", str(DISCOUNT), "--input", str(input_file), "--stack", "64MB"]
    )
    assert result.exit_code == 2
    assert "stack_bytes must be between" in result.output
