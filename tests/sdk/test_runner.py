"""The sandbox runner on real wasm: the adversarial corpus, determinism, threads, leaks.

Modules are small WAT programs written inline (compiled with wasmtime.wat2wasm), plus
the C fixtures in tests/sdk/wasm/ (see its README for the rebuild recipe).
"""

from __future__ import annotations

import dataclasses
import os
import resource
import signal
import threading
import time
from pathlib import Path

import orjson
import pytest
import wasmtime

from functions_sdk import Limits
from functions_sdk.runner import (
    CompiledModule,
    ErrorCode,
    InvalidLimitsError,
    InvalidModuleError,
    RunResult,
    RunStatus,
    load_module,
    run,
)
from functions_sdk.runner import wasi as wasi_impl
from functions_sdk.runner.wasi import FIXED_TIME_NS

WASM_DIR = Path(__file__).parent / "wasm"

PRELUDE = """
  (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") {pages})
  ;; write(fd, ptr, len) through an iovec at address 0, nwritten at 8
  (func $write (param $fd i32) (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (local.get $fd) (i32.const 0) (i32.const 1) (i32.const 8))))
  (data (i32.const 16) "{{}}")
  (func $ok (call $write (i32.const 1) (i32.const 16) (i32.const 2)))
"""


def wasi_module(body: str, *, pages: int = 1, extra: str = "") -> bytes:
    """A WASI command whose `_start` is `body`; `$write` and `$ok` (prints `{}`) help."""
    wat = f'(module {PRELUDE.format(pages=pages)} {extra} (func (export "_start") {body}))'
    return bytes(wasmtime.wat2wasm(wat))


ECHO = bytes(wasmtime.wat2wasm((WASM_DIR / "echo.wat").read_text()))


@pytest.fixture(scope="module")
def echo() -> CompiledModule:
    return load_module(ECHO)


def assert_next_run_succeeds(echo: CompiledModule) -> None:
    result = run(echo, b'{"next": true}')
    assert result.ok, result.message
    assert result.output == b'{"next": true}'


def test_echo_round_trip_reports_every_measure(echo: CompiledModule) -> None:
    result = run(echo, b'{"cart": {"lines": []}}')
    assert result.status is RunStatus.SUCCEEDED
    assert result.error_code is None
    assert result.output == b'{"cart": {"lines": []}}'
    assert result.input_bytes == result.output_bytes == 23
    assert result.module_bytes == len(ECHO)
    assert result.fuel_exact
    assert result.fuel_consumed is not None
    assert 0 < result.fuel_consumed < 100
    assert result.peak_memory_bytes == 17 * 65_536
    assert result.abi == "wasi"
    assert result.export == "_start"
    assert result.limits == Limits()
    assert result.duration_ms > 0


# --- the adversarial corpus: each case ends with its own code; the next run succeeds ---

LOOP = "(loop $l (br $l))"
CORPUS: list[tuple[str, bytes, bytes, Limits, ErrorCode]] = [
    ("infinite loop", wasi_module(LOOP), b"{}", Limits(), ErrorCode.INSTRUCTION_LIMIT_EXCEEDED),
    (
        "loop under huge fuel, short deadline",
        wasi_module(LOOP),
        b"{}",
        Limits(instructions=10**13, timeout_ms=50),
        ErrorCode.TIMEOUT,
    ),
    (
        "memory.grow bomb",
        wasi_module(
            "(loop $l (br_if $l (i32.ne (memory.grow (i32.const 1)) (i32.const -1)))) unreachable"
        ),
        b"{}",
        Limits(),
        ErrorCode.LINEAR_MEMORY_LIMIT_EXCEEDED,
    ),
    (
        "initial memory above the limit",
        wasi_module("(call $ok)", pages=200),
        b"{}",
        Limits(),
        ErrorCode.LINEAR_MEMORY_LIMIT_EXCEEDED,
    ),
    (
        "unbounded recursion",
        wasi_module(
            "(call $rec (i32.const 0)) drop",
            extra=(
                "(func $rec (param i32) (result i32)"
                " (i32.add (call $rec (i32.add (local.get 0) (i32.const 1))) (i32.const 1)))"
            ),
        ),
        b"{}",
        Limits(),
        ErrorCode.STACK_LIMIT_EXCEEDED,
    ),
    (
        "1 MB output in one write",
        wasi_module("(call $write (i32.const 1) (i32.const 64) (i32.const 1000000))", pages=17),
        b"{}",
        Limits(),
        ErrorCode.OUTPUT_TOO_LARGE,
    ),
    (
        "endless small writes stop at the output cap, not at the fuel limit",
        wasi_module("(loop $l (call $write (i32.const 1) (i32.const 64) (i32.const 100)) (br $l))"),
        b"{}",
        Limits(),
        ErrorCode.OUTPUT_TOO_LARGE,
    ),
    ("129 kB input", ECHO, b"x" * 129_000, Limits(), ErrorCode.INPUT_TOO_LARGE),
    (
        "non-JSON output",
        wasi_module(
            "(call $write (i32.const 1) (i32.const 32) (i32.const 5))",
            extra='(data (i32.const 32) "hello")',
        ),
        b"{}",
        Limits(),
        ErrorCode.INVALID_OUTPUT,
    ),
    ("empty output", wasi_module(""), b"{}", Limits(), ErrorCode.INVALID_OUTPUT),
    (
        "proc_exit(3)",
        wasi_module("(call $ok) (call $proc_exit (i32.const 3))"),
        b"{}",
        Limits(),
        ErrorCode.NONZERO_EXIT,
    ),
    ("unreachable", wasi_module("unreachable"), b"{}", Limits(), ErrorCode.RUNTIME_ERROR),
    (
        "one allocation far above the limit, then abort",
        wasi_module(
            "(if (i32.eq (memory.grow (i32.const 400)) (i32.const -1)) (then unreachable))"
            "(call $ok)"
        ),
        b"{}",
        Limits(),
        ErrorCode.LINEAR_MEMORY_LIMIT_EXCEEDED,
    ),
    (
        "malloc failure ending in exit(1)",
        wasi_module(
            "(if (i32.eq (memory.grow (i32.const 400)) (i32.const -1))"
            " (then (call $proc_exit (i32.const 1))))"
            "(call $ok)"
        ),
        b"{}",
        Limits(),
        ErrorCode.LINEAR_MEMORY_LIMIT_EXCEEDED,
    ),
    (
        "a trap with memory at the limit that is not about memory",
        wasi_module("(drop (memory.grow (i32.const 151))) unreachable"),
        b"{}",
        Limits(),
        ErrorCode.RUNTIME_ERROR,
    ),
    (
        "out-of-bounds load",
        wasi_module("(drop (i32.load (i32.const 0x7fffffff)))"),
        b"{}",
        Limits(),
        ErrorCode.RUNTIME_ERROR,
    ),
    (
        "trap in the start function",
        wasi_module("", extra="(func $boom unreachable) (start $boom)"),
        b"{}",
        Limits(),
        ErrorCode.RUNTIME_ERROR,
    ),
    (
        "malformed bytes",
        b"\0asm\x01\0\0\0\xff\xff garbage",
        b"{}",
        Limits(),
        ErrorCode.INVALID_MODULE,
    ),
    ("not wasm at all", b"(module)", b"{}", Limits(), ErrorCode.INVALID_MODULE),
    (
        "300 kB module",
        wasi_module("(call $ok)", pages=5, extra=f'(data (i32.const 1024) "{"a" * 300_000}")'),
        b"{}",
        Limits(),
        ErrorCode.INVALID_MODULE,
    ),
]


@pytest.mark.parametrize(
    ("wasm", "input", "limits", "expected"),
    [case[1:] for case in CORPUS],
    ids=[case[0] for case in CORPUS],
)
def test_adversarial_corpus(
    echo: CompiledModule, wasm: bytes, input: bytes, limits: Limits, expected: ErrorCode
) -> None:
    result = run(wasm, input, limits)
    assert result.status is RunStatus.FAILED
    assert result.error_code is expected, result.message
    assert result.message
    assert_next_run_succeeds(echo)


def test_instruction_limit_reports_the_whole_budget_as_consumed() -> None:
    result = run(wasi_module(LOOP), b"{}", Limits(instructions=123_456))
    assert result.error_code is ErrorCode.INSTRUCTION_LIMIT_EXCEEDED
    assert result.fuel_consumed == 123_456
    assert result.fuel_exact


def test_timeout_is_prompt_and_fuel_is_marked_inexact() -> None:
    result = run(wasi_module(LOOP), b"{}", Limits(instructions=10**13, timeout_ms=50))
    assert result.error_code is ErrorCode.TIMEOUT
    assert 40 <= result.duration_ms < 500
    assert result.fuel_exact is False
    assert result.fuel_consumed is None


def test_output_cap_keeps_the_first_bytes_and_counts_the_attempt() -> None:
    limits = Limits(output_bytes=250)
    result = run(
        wasi_module("(loop $l (call $write (i32.const 1) (i32.const 64) (i32.const 100)) (br $l))"),
        b"{}",
        limits,
    )
    assert result.error_code is ErrorCode.OUTPUT_TOO_LARGE
    assert len(result.output) == 250
    assert result.output_bytes == 300  # stopped at the first write past the cap


def test_log_flood_is_truncated_with_a_marker_and_the_run_succeeds() -> None:
    # 100 x 1000 bytes of "L" on stderr, then `{}` on stdout.
    flood = wasi_module(
        "(local $i i32) (memory.fill (i32.const 64) (i32.const 76) (i32.const 1000))"
        "(loop $l (call $write (i32.const 2) (i32.const 64) (i32.const 1000))"
        " (local.set $i (i32.add (local.get $i) (i32.const 1)))"
        " (br_if $l (i32.lt_u (local.get $i) (i32.const 100))))"
        "(call $ok)"
    )
    result = run(flood, b"{}")
    assert result.ok, result.message
    assert result.output == b"{}"
    assert result.logs_truncated
    assert result.logs_bytes == 100_000
    assert result.logs.startswith("L" * 1000)
    assert result.logs[1000:] == "\n[cartwheel: logs truncated: 100,000 bytes written, limit 1,000]"


def test_memory_failure_reports_what_the_run_needs() -> None:
    result = run(
        wasi_module(
            "(if (i32.eq (memory.grow (i32.const 400)) (i32.const -1)) (then unreachable))"
            "(call $ok)"
        ),
        b"{}",
    )
    assert result.error_code is ErrorCode.LINEAR_MEMORY_LIMIT_EXCEEDED
    assert "needs at least 26,279,936 bytes" in result.message
    assert result.peak_memory_bytes == 65_536  # of the real run, where the grow failed
    assert result.output == b""


def test_proc_exit_zero_is_success() -> None:
    result = run(wasi_module("(call $ok) (call $proc_exit (i32.const 0))"), b"{}")
    assert result.ok
    assert result.output == b"{}"


def test_nonzero_exit_message_names_the_status() -> None:
    result = run(wasi_module("(call $proc_exit (i32.const 3))"), b"{}")
    assert result.error_code is ErrorCode.NONZERO_EXIT
    assert "exit status 3" in result.message


def test_host_rejects_out_of_bounds_pointers_with_efault() -> None:
    # fd_write with an iovec pointing past memory returns EFAULT (21) instead of reading
    # host memory; the guest prints that errno as one digit pair.
    probe = wasi_module(
        "(local $e i32)"
        "(i32.store (i32.const 0) (i32.const 0xfffff000)) (i32.store (i32.const 4) (i32.const 64))"
        "(local.set $e (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))"
        "(i32.store8 (i32.const 40)"
        " (i32.add (i32.const 48) (i32.div_u (local.get $e) (i32.const 10))))"
        "(i32.store8 (i32.const 41)"
        " (i32.add (i32.const 48) (i32.rem_u (local.get $e) (i32.const 10))))"
        "(call $write (i32.const 1) (i32.const 40) (i32.const 2))"
    )
    result = run(probe, b"{}")
    assert result.ok, result.message
    assert result.output == b"21"


# --- imports are an allowlist, checked at load time ---


@pytest.mark.parametrize(
    ("module", "name", "signature"),
    [
        ("env", "system", "(param i32) (result i32)"),
        ("wasi_snapshot_preview1", "sock_accept", "(param i32 i32 i32) (result i32)"),
        (
            "wasi_snapshot_preview1",
            "path_open",
            "(param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)",
        ),
        ("wasi_snapshot_preview1", "fd_write", "(param i32) (result i32)"),  # wrong type
    ],
)
def test_forbidden_imports_are_rejected_at_load_naming_the_import(
    echo: CompiledModule, module: str, name: str, signature: str
) -> None:
    wasm = bytes(
        wasmtime.wat2wasm(
            f'(module (import "{module}" "{name}" (func {signature}))'
            '(memory (export "memory") 1) (func (export "_start")))'
        )
    )
    with pytest.raises(InvalidModuleError) as info:
        load_module(wasm)
    assert info.value.code == "FORBIDDEN_IMPORT"
    assert f"`{module}.{name}`" in info.value.message
    assert info.value.details["import_name"] == f"{module}.{name}"
    result = run(wasm, b"{}")
    assert result.error_code is ErrorCode.INVALID_MODULE
    assert f"{module}.{name}" in result.message
    assert_next_run_succeeds(echo)


def test_load_errors_have_stable_codes() -> None:
    with pytest.raises(InvalidModuleError) as info:
        load_module(b"\0asm\x01\0\0\0\xff")
    assert info.value.code == "INVALID_MODULE"
    with pytest.raises(InvalidModuleError) as info:
        load_module(b"(module)")
    assert info.value.code == "INVALID_MODULE"
    assert "\\0asm" in info.value.message
    with pytest.raises(InvalidModuleError) as info:
        load_module(b"\0" * 300_000)
    assert info.value.code == "MODULE_TOO_LARGE"
    assert info.value.details == {"size": 300_000, "limit": 256_000}
    with pytest.raises(InvalidModuleError) as info:
        load_module(wasi_module("(call $ok)"), export="run")
    assert info.value.code == "MISSING_EXPORT"
    assert "`run`" in info.value.message
    no_memory = bytes(
        wasmtime.wat2wasm(
            '(module (import "wasi_snapshot_preview1" "sched_yield" (func (result i32)))'
            ' (func (export "_start")))'
        )
    )
    with pytest.raises(InvalidModuleError) as info:
        load_module(no_memory)
    assert "memory" in info.value.message
    typed = bytes(wasmtime.wat2wasm('(module (func (export "_start") (param i32)))'))
    with pytest.raises(InvalidModuleError) as info:
        load_module(typed)
    assert info.value.code == "MISSING_EXPORT"
    assert "() -> ()" in info.value.message


def test_named_export_runs_instead_of_start(echo: CompiledModule) -> None:
    wasm = wasi_module("unreachable", extra='(func (export "cart_run") (call $ok))')
    module = load_module(wasm, export="cart_run")
    assert module.entry == "cart_run"
    assert run(module, b"{}").ok
    assert run(module, b"{}", export="_start").error_code is ErrorCode.RUNTIME_ERROR
    missing = run(module, b"{}", export="nope")
    assert missing.error_code is ErrorCode.INVALID_MODULE
    assert "`nope`" in missing.message


def test_reactor_initializer_runs_before_the_named_export() -> None:
    # `run` writes `{}` only if `_initialize` ran first and set the flag.
    reactor = wasi_module(
        "unreachable",
        extra=(
            "(global $ready (mut i32) (i32.const 0))"
            '(func (export "_initialize") (global.set $ready (i32.const 1)))'
            '(func (export "run") (if (global.get $ready) (then (call $ok)) (else unreachable)))'
        ),
    )
    result = run(load_module(reactor, export="run"), b"{}")
    assert result.ok, result.message
    assert result.output == b"{}"


# --- deterministic WASI: files, environment, clock, random ---

PROBE = (WASM_DIR / "probe.wasm").read_bytes()


def test_files_env_args_clock_and_random_are_absent_or_fixed() -> None:
    result = run(PROBE, b'{"hello": "world"}')
    assert result.ok, result.message + result.logs
    report = orjson.loads(result.output)
    assert report["prestat_fd3_errno"] == 8  # EBADF: no preopened directories
    assert report["read_fd3"] == -1
    assert report["read_fd3_errno"] == 8
    assert report["home"] is None
    assert report["environ_count"] == 0
    assert report["argc"] == 0
    assert report["time"] == FIXED_TIME_NS // 1_000_000_000
    assert report["clock_monotonic_ns"] == FIXED_TIME_NS
    assert report["stdin_bytes"] == 18
    assert len(report["random_hex"]) == 32
    assert result.logs == "probe: read 18 bytes of input\n"


def test_same_module_and_input_give_identical_output_and_fuel_over_100_runs() -> None:
    module = load_module(PROBE)
    results = [run(module, b'{"hello": "world"}') for _ in range(100)]
    assert all(r.ok for r in results)
    assert len({r.output for r in results}) == 1
    assert len({r.fuel_consumed for r in results}) == 1
    assert len({r.logs for r in results}) == 1


# --- threads ---


def test_parallel_runs_keep_their_own_state() -> None:
    exit3 = load_module(wasi_module("(call $ok) (call $proc_exit (i32.const 3))"))
    chatty = load_module(
        wasi_module("(loop $l (call $write (i32.const 1) (i32.const 64) (i32.const 10)) (br $l))")
    )
    echo = load_module(ECHO)
    failures: list[str] = []

    def worker(kind: int) -> None:
        for i in range(300):
            if kind == 0:
                payload = f'{{"thread": {kind}, "i": {i}}}'.encode()
                r = run(echo, payload)
                if not r.ok or r.output != payload:
                    failures.append(f"echo {i}: {r.error_code} {r.output[:40]!r}")
            elif kind == 1:
                r = run(exit3, b"{}")
                if r.error_code is not ErrorCode.NONZERO_EXIT:
                    failures.append(f"exit {i}: {r.error_code}")
            else:
                r = run(chatty, b"{}", Limits(output_bytes=500))
                if r.error_code is not ErrorCode.OUTPUT_TOO_LARGE or r.output_bytes != 510:
                    failures.append(f"chatty {i}: {r.error_code} {r.output_bytes}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in (0, 1, 2, 0)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


# --- no leak ---


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize()


@pytest.mark.slow
def test_rss_is_stable_over_10000_runs(echo: CompiledModule) -> None:
    trap = load_module(wasi_module("unreachable"))
    payload = b'{"cart": {"lines": [' + b'{"id": 1},' * 200 + b'{"id": 2}]}}'
    for _ in range(1_000):  # warm up allocators and caches
        run(echo, payload)
        run(trap, payload)
    before = _rss_bytes()
    for i in range(10_000):
        result = run(echo if i % 2 else trap, payload)
        assert result.ok is bool(i % 2)
    grown = _rss_bytes() - before
    assert grown < 16 * 1024 * 1024, f"RSS grew by {grown / 1e6:.1f} MB over 10,000 runs"


# --- RunResult ---


def test_run_result_round_trips_through_json(echo: CompiledModule) -> None:
    for result in (
        run(echo, b'{"a": "\xc3\xa9"}'),
        run(wasi_module("unreachable"), b"{}"),
        dataclasses.replace(run(echo, b"{}"), output=b"\xff\xfe"),
    ):
        restored = RunResult.from_dict(orjson.loads(orjson.dumps(result.to_dict())))
        assert restored == result


def test_deadline_still_fires_in_a_forked_child() -> None:
    # RQ work horses are forked: the epoch ticker thread does not survive fork() and
    # must be restarted in the child, or a deadline would never fire there.
    spin = load_module(wasi_module(LOOP))
    assert run(spin, b"{}", Limits(instructions=10**13, timeout_ms=30)).error_code is (
        ErrorCode.TIMEOUT
    )
    pid = os.fork()
    if pid == 0:  # child: report through the exit status only
        result = run(spin, b"{}", Limits(instructions=10**13, timeout_ms=50))
        os._exit(0 if result.error_code is ErrorCode.TIMEOUT else 1)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.02)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    pytest.fail("the forked child's run never hit its deadline")


def test_a_failing_host_function_traps_the_guest_and_the_process_survives(
    echo: CompiledModule, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(self: wasi_impl.WasiContext, n: int) -> bytes:
        raise RuntimeError("injected fault")

    monkeypatch.setattr(wasi_impl.WasiContext, "random_bytes", broken)
    result = run(PROBE, b"{}")
    assert result.error_code is ErrorCode.RUNTIME_ERROR
    assert "random_get: RuntimeError: injected fault" in result.message
    monkeypatch.undo()
    assert_next_run_succeeds(echo)


def test_input_limit_is_inclusive_and_scales(echo: CompiledModule) -> None:
    limits = Limits(input_bytes=1_000, output_bytes=1_000)
    at_limit = b'"' + b"x" * 998 + b'"'
    assert run(echo, at_limit, limits).ok
    over = b'"' + b"x" * 999 + b'"'
    assert run(echo, over, limits).error_code is ErrorCode.INPUT_TOO_LARGE
    scaled = run(echo, over, limits.scaled(2))
    assert scaled.ok
    assert scaled.limits.input_bytes == 2_000


def test_a_timeout_in_one_thread_leaves_concurrent_runs_alone(echo: CompiledModule) -> None:
    spin = load_module(wasi_module(LOOP))
    codes: list[ErrorCode | None] = []

    def spinner() -> None:
        for _ in range(5):
            codes.append(run(spin, b"{}", Limits(instructions=10**13, timeout_ms=40)).error_code)

    thread = threading.Thread(target=spinner)
    thread.start()
    echoed = 0
    while thread.is_alive():
        assert_next_run_succeeds(echo)
        echoed += 1
    thread.join()
    assert codes == [ErrorCode.TIMEOUT] * 5
    assert echoed > 0


@pytest.mark.parametrize(
    "limits",
    [
        Limits(stack_bytes=64_000_000),
        Limits(stack_bytes=0),
        Limits(linear_memory_bytes=-1),  # -1 would mean "no limit" to wasmtime
        Limits(instructions=0),
        Limits(output_bytes=-5),
        Limits(instructions=10**30),
    ],
)
def test_unenforceable_limits_raise_instead_of_running(
    echo: CompiledModule, limits: Limits
) -> None:
    with pytest.raises(InvalidLimitsError) as info:
        run(echo, b"{}", limits)
    assert info.value.code == "INVALID_LIMITS"
    with pytest.raises(InvalidLimitsError):
        load_module(ECHO, limits=limits)
    assert_next_run_succeeds(echo)
