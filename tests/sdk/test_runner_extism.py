"""Extism-ABI modules: detection, a fresh instance per run, limits, parity with WASI."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
import wasmtime

from functions_sdk import Limits
from functions_sdk.runner import (
    CompiledModule,
    ErrorCode,
    InvalidModuleError,
    RunStatus,
    load_module,
    run,
)
from functions_sdk.runner.errors import EXTISM_MESSAGES, EXTISM_TRAP_PREFIX
from functions_sdk.runner.extism_abi import _call, compiled_plugin

WASM_DIR = Path(__file__).parent / "wasm"

KERNEL = """
  (import "extism:host/env" "input_length" (func $input_length (result i64)))
  (import "extism:host/env" "input_load_u8" (func $input_load_u8 (param i64) (result i32)))
  (import "extism:host/env" "alloc" (func $alloc (param i64) (result i64)))
  (import "extism:host/env" "store_u8" (func $store_u8 (param i64 i32)))
  (import "extism:host/env" "output_set" (func $output_set (param i64 i64)))
  (memory (export "memory") 1)
  (global $calls (mut i32) (i32.const 0))
  ;; copy `len` bytes of our memory at `ptr` into the kernel and make them the output
  (func $output (param $ptr i32) (param $len i32) (local $off i64) (local $i i32)
    (local.set $off (call $alloc (i64.extend_i32_u (local.get $len))))
    (block $done (loop $l
      (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
      (call $store_u8 (i64.add (local.get $off) (i64.extend_i32_u (local.get $i)))
                      (i32.load8_u (i32.add (local.get $ptr) (local.get $i))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (call $output_set (local.get $off) (i64.extend_i32_u (local.get $len))))
  (data (i32.const 16) "{}hello")
"""

FUNCS = """
  (func (export "run") (result i32) (call $output (i32.const 16) (i32.const 2)) (i32.const 0))
  (func (export "echo") (result i32) (local $n i64) (local $off i64) (local $i i64)
    (local.set $n (call $input_length))
    (local.set $off (call $alloc (local.get $n)))
    (block $done (loop $l
      (br_if $done (i64.ge_u (local.get $i) (local.get $n)))
      (call $store_u8 (i64.add (local.get $off) (local.get $i))
                      (call $input_load_u8 (local.get $i)))
      (local.set $i (i64.add (local.get $i) (i64.const 1)))
      (br $l)))
    (call $output_set (local.get $off) (local.get $n))
    (i32.const 0))
  ;; prints how many times this instance was called: always 1 with a fresh instance
  (func (export "count") (result i32)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    (i32.store8 (i32.const 200) (i32.add (i32.const 48) (global.get $calls)))
    (call $output (i32.const 200) (i32.const 1))
    (i32.const 0))
  (func (export "spin") (result i32) (loop $l (br $l)) (i32.const 0))
  (func (export "grow") (result i32)
    (loop $l (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1)))) unreachable)
  (func $rec (export "rec") (result i32) (call $rec))
  (func (export "trap") (result i32) unreachable)
  (func (export "fail") (result i32) (i32.const 7))
  (func (export "not_json") (result i32) (call $output (i32.const 18) (i32.const 5)) (i32.const 0))
  (func (export "big") (result i32)
    (drop (memory.grow (i32.const 1)))
    (call $output (i32.const 0) (i32.const 100000))
    (i32.const 0))
"""

PLUGIN = bytes(wasmtime.wat2wasm(f"(module {KERNEL} {FUNCS})"))


@pytest.fixture(scope="module")
def plugin() -> CompiledModule:
    return load_module(PLUGIN)


def test_abi_is_detected_from_the_imports(plugin: CompiledModule) -> None:
    assert plugin.abi == "extism"
    assert plugin.entry == "run"
    assert "extism:host/env.output_set" in plugin.imports
    result = run(plugin, b"{}")
    assert result.ok, result.message
    assert result.output == b"{}"
    assert result.abi == "extism"
    assert result.fuel_consumed is None
    assert result.fuel_exact is False
    assert result.peak_memory_bytes is None


def test_every_run_gets_a_fresh_instance(plugin: CompiledModule) -> None:
    outputs = {run(plugin, b"{}", export="count").output for _ in range(5)}
    assert outputs == {b"1"}


@pytest.mark.parametrize(
    ("export", "input", "limits", "expected"),
    [
        ("spin", b"{}", Limits(), ErrorCode.INSTRUCTION_LIMIT_EXCEEDED),
        ("spin", b"{}", Limits(instructions=10**13, timeout_ms=50), ErrorCode.TIMEOUT),
        ("grow", b"{}", Limits(), ErrorCode.LINEAR_MEMORY_LIMIT_EXCEEDED),
        ("rec", b"{}", Limits(), ErrorCode.RUNTIME_ERROR),
        ("trap", b"{}", Limits(), ErrorCode.RUNTIME_ERROR),
        ("fail", b"{}", Limits(), ErrorCode.NONZERO_EXIT),
        ("not_json", b"{}", Limits(), ErrorCode.INVALID_OUTPUT),
        ("big", b"{}", Limits(), ErrorCode.OUTPUT_TOO_LARGE),
        ("echo", b"x" * 129_000, Limits(), ErrorCode.INPUT_TOO_LARGE),
        ("missing", b"{}", Limits(), ErrorCode.INVALID_MODULE),
    ],
)
def test_limits_and_failures_map_to_codes(
    plugin: CompiledModule,
    export: str,
    input: bytes,
    limits: Limits,
    expected: ErrorCode,
) -> None:
    result = run(plugin, input, limits, export=export)
    assert result.status is RunStatus.FAILED
    assert result.error_code is expected, result.message
    assert run(plugin, b'{"next": 1}', export="echo").output == b'{"next": 1}'


def test_the_extism_messages_we_map_are_the_ones_extism_produces(plugin: CompiledModule) -> None:
    # Pinned: if an Extism upgrade rewords these, classification must be revisited.
    seen = {}
    for export, limits in (
        ("spin", Limits()),
        ("spin", Limits(instructions=10**13, timeout_ms=50)),
        ("grow", Limits()),
    ):
        _, message, _ = _call(compiled_plugin(plugin, limits), export, b"")
        assert message is not None
        seen[message] = EXTISM_MESSAGES[message]
    assert set(seen) == set(EXTISM_MESSAGES)
    _, trap, _ = _call(compiled_plugin(plugin, Limits()), "trap", b"")
    assert trap is not None
    assert trap.startswith(EXTISM_TRAP_PREFIX)


def test_timeout_is_prompt(plugin: CompiledModule) -> None:
    result = run(plugin, b"{}", Limits(instructions=10**13, timeout_ms=50), export="spin")
    assert result.error_code is ErrorCode.TIMEOUT
    assert result.duration_ms < 1000


@pytest.mark.parametrize(
    ("module", "name", "signature"),
    [
        ("extism:host/env", "http_request", "(param i64 i64) (result i64)"),
        ("extism:host/user", "lookup", "(param i64) (result i64)"),
        ("wasi_snapshot_preview1", "fd_write", "(param i32 i32 i32 i32) (result i32)"),
        ("env", "system", "(param i32) (result i32)"),
    ],
)
def test_extism_modules_import_only_the_kernel(module: str, name: str, signature: str) -> None:
    wasm = bytes(
        wasmtime.wat2wasm(
            '(module (import "extism:host/env" "input_length" (func (result i64)))'
            f' (import "{module}" "{name}" (func {signature}))'
            ' (memory (export "memory") 1) (func (export "run") (result i32) (i32.const 0)))'
        )
    )
    with pytest.raises(InvalidModuleError) as info:
        load_module(wasm)
    assert info.value.code == "FORBIDDEN_IMPORT"
    assert f"`{module}.{name}`" in info.value.message


def cart(lines: int, *, percentage: int = 15, minimum: int = 2) -> bytes:
    """A discount input of `lines` cart lines, in the shape an input query produces."""
    return orjson.dumps(
        {
            "cart": {
                "lines": [
                    {
                        "id": f"gid://cartwheel/CartLine/{i}",
                        "quantity": i % 4,
                        "cost": {"subtotalAmount": {"amount": "12.50", "currencyCode": "USD"}},
                        "merchandise": {
                            "__typename": "ProductVariant",
                            "id": f"gid://cartwheel/ProductVariant/{i}",
                            "product": {"hasAnyTag": i % 2 == 0, "title": 'A "quoted" name'},
                        },
                    }
                    for i in range(lines)
                ]
            },
            "discount": {
                "metafield": {"jsonValue": {"percentage": percentage, "minimumQuantity": minimum}}
            },
        }
    )


@pytest.mark.parametrize(
    "input",
    [cart(20), cart(3, percentage=50, minimum=3), cart(0), b'{"cart": {"lines": []}}'],
    ids=["5kB cart", "one eligible line", "no lines", "no discount config"],
)
def test_both_abis_compute_the_same_discount(input: bytes) -> None:
    wasi = load_module((WASM_DIR / "discount_wasi.wasm").read_bytes())
    extism = load_module((WASM_DIR / "discount_extism.wasm").read_bytes())
    assert (wasi.abi, extism.abi) == ("wasi", "extism")
    a = run(wasi, input)
    b = run(extism, input)
    assert a.ok, a.message
    assert b.ok, b.message
    assert a.output == b.output
    operations = orjson.loads(a.output)["operations"]
    if input == cart(20):
        targets = operations[0]["productDiscountsAdd"]["candidates"][0]["targets"]
        assert [t["cartLine"]["id"] for t in targets] == [
            f"gid://cartwheel/CartLine/{i}" for i in range(20) if i % 4 >= 2
        ]
        assert operations[0]["productDiscountsAdd"]["candidates"][0]["value"] == {
            "percentage": {"value": 15}
        }


def test_both_abis_fail_the_same_way_on_bad_input() -> None:
    wasi = run((WASM_DIR / "discount_wasi.wasm").read_bytes(), b"not json")
    extism = run((WASM_DIR / "discount_extism.wasm").read_bytes(), b"not json")
    assert wasi.error_code is extism.error_code is ErrorCode.NONZERO_EXIT
    assert "discount: cannot read the input" in wasi.logs
    assert "discount: cannot read the input" in extism.message


@pytest.mark.slow
def test_fresh_plugins_do_not_leak(plugin: CompiledModule) -> None:
    def rss() -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * 4096

    for _ in range(300):
        run(plugin, b'{"a": 1}', export="echo")
    before = rss()
    for i in range(3_000):
        result = run(plugin, b'{"a": 1}', export="echo" if i % 2 else "trap")
        assert result.ok is bool(i % 2)
    grown = rss() - before
    assert grown < 16 * 1024 * 1024, f"RSS grew by {grown / 1e6:.1f} MB over 3,000 Extism runs"
