"""`run()`: execute one function under its limits and describe what happened.

The same `run()` backs checkout on the server and `cartwheel fn run` on a laptop.
WASI-ABI modules run here on wasmtime with the deterministic host functions of
`functions_sdk.runner.wasi`; Extism-ABI modules go to `functions_sdk.runner.extism_abi`.
A guest failure is data in the `RunResult`, never an exception.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import orjson
import wasmtime

from functions_sdk.limits import Limits
from functions_sdk.runner import _native, errors, wasi
from functions_sdk.runner.engine import MAX_TABLE_ELEMENTS, check_limits, get_engine
from functions_sdk.runner.errors import InvalidModuleError
from functions_sdk.runner.module import CompiledModule, load_module
from functions_sdk.runner.result import ErrorCode, RunResult, RunStatus

REACTOR_INIT = "_initialize"
"""Export a WASI reactor runs, under the same limits, before the named entry export."""

MEMORY_DIAGNOSIS_FACTOR = 16
"""A run that fails (trap or non-zero exit) below its memory limit is re-run once with
this many times the limit to tell a refused `memory.grow` from any other failure."""

MEMORY_DIAGNOSIS_MAX_BYTES = 256_000_000
"""Cap of the diagnostic re-run's memory (host memory it may commit)."""

LOG_TRUNCATION_MARKER = "\n[cartwheel: logs truncated: {total:,} bytes written, limit {limit:,}]"
"""Appended to `RunResult.logs` when stderr exceeded the log limit."""


def run(
    module: CompiledModule | bytes,
    input: bytes,
    limits: Limits = Limits(),  # noqa: B008 — Limits is frozen
    *,
    export: str | None = None,
) -> RunResult:
    """Run `module` (a `CompiledModule`, or wasm bytes loaded on the spot) on `input`.

    WASI modules read `input` on stdin and write their output JSON to stdout and logs to
    stderr; Extism modules use the Extism kernel's input/output. `export` defaults to
    the module's entry (`_start` for WASI, `run` for Extism). Every limit in `limits` is
    enforced; see docs/RUNNER.md for how each one is measured.

    Never raises for a guest failure or an invalid module: the `RunResult` carries the
    error code and message. Raises `InvalidLimitsError` for limits the runner cannot
    enforce (a caller error).
    """
    started = time.perf_counter()
    check_limits(limits)
    if not isinstance(module, CompiledModule):
        wasm = bytes(module)
        try:
            module = load_module(wasm, limits=limits, export=export)
        except InvalidModuleError as exc:
            return failed_before_start(
                ErrorCode.INVALID_MODULE,
                f"{exc.message} [{exc.code}]",
                started=started,
                input=input,
                limits=limits,
                module_bytes=len(wasm),
                abi="wasi",
                export=export or "",
                sha256="",
            )
    entry = export or module.entry
    early = _precheck(module, entry, input, limits)
    if early is not None:
        code, message = early
        return failed_before_start(
            code,
            message,
            started=started,
            input=input,
            limits=limits,
            module_bytes=module.size,
            abi=module.abi,
            export=entry,
            sha256=module.sha256,
        )
    if module.abi == "extism":
        from functions_sdk.runner.extism_abi import run_extism

        return run_extism(module, input, limits, entry, started)
    return _run_wasi(module, input, limits, entry, started)


def _precheck(
    module: CompiledModule, entry: str, input: bytes, limits: Limits
) -> tuple[ErrorCode, str] | None:
    if module.size > limits.module_bytes:
        return ErrorCode.INVALID_MODULE, (
            f"The module is {module.size:,} bytes; the limit is {limits.module_bytes:,}."
        )
    try:
        module.check_export(entry)
    except InvalidModuleError as exc:
        return ErrorCode.INVALID_MODULE, f"{exc.message} [{exc.code}]"
    if len(input) > limits.input_bytes:
        return ErrorCode.INPUT_TOO_LARGE, errors.describe(
            ErrorCode.INPUT_TOO_LARGE, limits, detail=f"{len(input):,} bytes"
        )
    if module.memory_min_bytes > limits.linear_memory_bytes:
        return ErrorCode.LINEAR_MEMORY_LIMIT_EXCEEDED, errors.describe(
            ErrorCode.LINEAR_MEMORY_LIMIT_EXCEEDED,
            limits,
            detail=f"the module's initial memory alone is {module.memory_min_bytes:,} bytes",
        )
    return None


@dataclass(slots=True)
class _Execution:
    ctx: wasi.WasiContext
    failure: _native.Failure | None
    remaining_fuel: int
    memory_bytes: int | None


def _execute(module: CompiledModule, input: bytes, limits: Limits, entry: str) -> _Execution:
    """One wasmtime execution in a fresh Store under `limits` (no classification)."""
    engine = get_engine(limits.stack_bytes)
    _, pre = module.prepared(engine)
    ctx = wasi.WasiContext(input, output_limit=limits.output_bytes, log_limit=limits.log_bytes)
    store = _native.new_store(
        engine.engine,
        memory=limits.linear_memory_bytes,
        tables=MAX_TABLE_ELEMENTS,
        fuel=limits.instructions,
        ticks=engine.deadline_ticks(limits.timeout_ms),
    )
    with wasi.activate(ctx):
        instance, failure = _native.instantiate(pre, store)
        if instance is not None and entry != REACTOR_INIT and REACTOR_INIT in module.exports:
            # A WASI reactor (library) must run its initializer before any other export.
            failure = _native.call(store, instance, REACTOR_INIT.encode())
        if instance is not None and failure is None:
            failure = _native.call(store, instance, entry.encode())
    remaining = _native.fuel_left(store)
    memory_bytes = _native.memory_size(store, instance) if instance is not None else None
    store.close()
    return _Execution(ctx, failure, remaining, memory_bytes)


def _needed_memory(module: CompiledModule, input: bytes, limits: Limits, entry: str) -> int | None:
    """Re-run with `MEMORY_DIAGNOSIS_FACTOR` times the memory limit; the memory it
    reaches if that is above the limit, else None.

    wasm has no trap for a refused `memory.grow` (it returns -1 and the guest usually
    aborts), but runs are deterministic: the re-run executes exactly like the original
    up to its first refused grow, which now succeeds. Reaching more memory than the
    limit therefore proves that the original run failed for lack of memory.
    """
    roomy = dataclasses.replace(
        limits,
        linear_memory_bytes=min(
            limits.linear_memory_bytes * MEMORY_DIAGNOSIS_FACTOR, MEMORY_DIAGNOSIS_MAX_BYTES
        ),
    )
    rerun = _execute(module, input, roomy, entry)
    peak = rerun.memory_bytes
    return peak if peak is not None and peak > limits.linear_memory_bytes else None


def _run_wasi(
    module: CompiledModule, input: bytes, limits: Limits, entry: str, started: float
) -> RunResult:
    execution = _execute(module, input, limits, entry)
    ctx, failure, memory_bytes = execution.ctx, execution.failure, execution.memory_bytes
    trap_code = failure.trap_code if failure is not None else None
    fuel_exact = trap_code is not wasmtime.TrapCode.INTERRUPT
    fuel: int | None = limits.instructions - execution.remaining_fuel if fuel_exact else None
    code: ErrorCode | None = None
    message = ""
    if ctx.stop == wasi.StopReason.HOST_FAULT:
        code = ErrorCode.RUNTIME_ERROR
        message = f"The runner failed while serving a WASI call ({ctx.host_fault})."
    elif ctx.stop == wasi.StopReason.OUTPUT_LIMIT:
        code = ErrorCode.OUTPUT_TOO_LARGE
        message = errors.describe(code, limits, detail=f"{ctx.output_total:,} bytes")
    elif ctx.stop == wasi.StopReason.EXIT and ctx.exit_code != 0:
        code = ErrorCode.NONZERO_EXIT
        message = errors.describe(code, limits, detail=f"exit status {ctx.exit_code}")
    elif failure is not None and ctx.stop != wasi.StopReason.EXIT:
        code = errors.trap_error_code(trap_code)
        message = errors.describe(code, limits, detail=_trap_summary(failure.message))
    if code in errors.MEMORY_DIAGNOSABLE and ctx.stop != wasi.StopReason.HOST_FAULT:
        needed = _needed_memory(module, input, limits, entry)
        if needed is not None:
            code = ErrorCode.LINEAR_MEMORY_LIMIT_EXCEEDED
            message = errors.describe(
                code, limits, detail=f"the run needs at least {needed:,} bytes; {message}"
            )
    output = bytes(ctx.stdout)
    if code is None:
        try:
            orjson.loads(output)
        except orjson.JSONDecodeError as exc:
            code = ErrorCode.INVALID_OUTPUT
            message = errors.describe(code, limits, detail=str(exc))
    logs, truncated = render_logs(bytes(ctx.stderr), ctx.log_total, limits)
    return RunResult(
        status=RunStatus.SUCCEEDED if code is None else RunStatus.FAILED,
        error_code=code,
        message=message,
        output=output,
        logs=logs,
        logs_truncated=truncated,
        logs_bytes=ctx.log_total,
        fuel_consumed=fuel,
        fuel_exact=fuel_exact,
        peak_memory_bytes=memory_bytes,
        duration_ms=(time.perf_counter() - started) * 1000,
        input_bytes=len(input),
        output_bytes=ctx.output_total,
        module_bytes=module.size,
        limits=limits,
        abi="wasi",
        export=entry,
        module_sha256=module.sha256,
    )


def _trap_summary(text: str) -> str:
    # wasmtime's message is a backtrace followed by "Caused by: <reason>"; the last line
    # is the reason (for people only: classification uses the trap code).
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else "trap"


def render_logs(kept: bytes, total: int, limits: Limits) -> tuple[str, bool]:
    """Decode the kept log bytes; mark them when `total` exceeded the log limit."""
    text = kept.decode("utf-8", errors="replace")
    if total <= limits.log_bytes:
        return text, False
    return text + LOG_TRUNCATION_MARKER.format(total=total, limit=limits.log_bytes), True


def failed_before_start(
    code: ErrorCode,
    message: str,
    *,
    started: float,
    input: bytes,
    limits: Limits,
    module_bytes: int,
    abi: str,
    export: str,
    sha256: str,
) -> RunResult:
    """The result of a run refused before any guest code executed."""
    return RunResult(
        status=RunStatus.FAILED,
        error_code=code,
        message=message,
        output=b"",
        logs="",
        logs_truncated=False,
        logs_bytes=0,
        fuel_consumed=0,
        fuel_exact=True,
        peak_memory_bytes=None,
        duration_ms=(time.perf_counter() - started) * 1000,
        input_bytes=len(input),
        output_bytes=0,
        module_bytes=module_bytes,
        limits=limits,
        abi=abi,
        export=export,
        module_sha256=sha256,
    )
