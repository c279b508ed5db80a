"""Runner exceptions, and the ONE place where engine failures become `ErrorCode`s.

wasmtime failures are classified by trap code (`wasmtime.Trap.trap_code`) and by the
runner's own per-run state (exit code, output cap), never by message text. Extism
reports every failure as `extism.Error` with only a message, so `extism_error_code`
below is the single, documented exception to that rule.
"""

from __future__ import annotations

from wasmtime import TrapCode

from functions_sdk.errors import CartwheelError
from functions_sdk.limits import Limits
from functions_sdk.runner.result import ErrorCode


class InvalidModuleError(CartwheelError):
    """The WebAssembly module cannot be run: not wasm, too large, a forbidden import,
    or a missing / mistyped entry export. `code` is one of INVALID_MODULE,
    MODULE_TOO_LARGE, FORBIDDEN_IMPORT, MISSING_EXPORT."""

    code = "INVALID_MODULE"


class InvalidLimitsError(CartwheelError):
    """A `Limits` value the runner cannot enforce (negative, zero, or a stack size
    outside what wasmtime supports). Raised to the caller: it is a platform or usage
    error, not a guest failure."""

    code = "INVALID_LIMITS"


class ModuleCacheError(CartwheelError):
    """The precompiled-module cache directory cannot be used (permissions, disk)."""

    code = "MODULE_CACHE_ERROR"


_TRAP_CODES: dict[TrapCode, ErrorCode] = {
    TrapCode.OUT_OF_FUEL: ErrorCode.INSTRUCTION_LIMIT_EXCEEDED,
    TrapCode.INTERRUPT: ErrorCode.TIMEOUT,
    TrapCode.STACK_OVERFLOW: ErrorCode.STACK_LIMIT_EXCEEDED,
}


def trap_error_code(trap_code: TrapCode | None) -> ErrorCode:
    """Map a wasmtime trap to our code: fuel, interrupt and stack overflow have their
    own trap codes; every other trap is a RUNTIME_ERROR."""
    if trap_code is not None and trap_code in _TRAP_CODES:
        return _TRAP_CODES[trap_code]
    return ErrorCode.RUNTIME_ERROR


MEMORY_DIAGNOSABLE: frozenset[ErrorCode] = frozenset(
    {ErrorCode.RUNTIME_ERROR, ErrorCode.NONZERO_EXIT}
)
"""Failures that may really be LINEAR_MEMORY_LIMIT_EXCEEDED. Linear memory has no trap
code: at the limit `memory.grow` returns -1 and the guest decides what happens (Rust
aborts with `unreachable`, C's malloc returns NULL and the program usually exits
non-zero). The runner re-runs such a failure once with more memory (runs are
deterministic); if that run grows past the limit, the original run failed for lack of
memory and the code becomes LINEAR_MEMORY_LIMIT_EXCEEDED (`sandbox._needed_memory`)."""


# Extism (1.x) reports every failure as a message string (and a return code that does
# not tell a trap, 134, from a guest returning 134). These are the exact messages of
# extism-sys 1.41 for the limits we configure, and the prefix of its trap messages
# (which carry a wasm backtrace but no trap code: a stack overflow is therefore a
# RUNTIME_ERROR under Extism). Any other message is the guest's own `error_set` text
# with a non-zero return: NONZERO_EXIT, the counterpart of a WASI non-zero exit.
# tests/sdk/test_runner_extism.py pins each message so that an Extism upgrade that
# rewords one fails loudly instead of misclassifying.
EXTISM_MESSAGES: dict[str, ErrorCode] = {
    "plugin ran out of fuel": ErrorCode.INSTRUCTION_LIMIT_EXCEEDED,
    "timeout": ErrorCode.TIMEOUT,
    "oom": ErrorCode.LINEAR_MEMORY_LIMIT_EXCEEDED,
}
EXTISM_TRAP_PREFIX = "error while executing at wasm backtrace"


def extism_error_code(message: str) -> ErrorCode:
    """Map an Extism error message to our code (Extism exposes nothing better)."""
    text = message.strip()
    if text in EXTISM_MESSAGES:
        return EXTISM_MESSAGES[text]
    if text.startswith(EXTISM_TRAP_PREFIX):
        return ErrorCode.RUNTIME_ERROR
    return ErrorCode.NONZERO_EXIT


def describe(code: ErrorCode, limits: Limits, *, detail: str = "") -> str:
    """A message for `code` that says what happened and what to do next."""
    text = _DESCRIPTIONS[code].format(limits=limits)
    return f"{text} ({detail})" if detail else text


_DESCRIPTIONS: dict[ErrorCode, str] = {
    ErrorCode.INSTRUCTION_LIMIT_EXCEEDED: (
        "The function used more than its {limits.instructions:,} instructions. Do less "
        "work per run: fewer passes over the cart lines, a smaller input query, and "
        "build with optimizations (Rust: --release with opt-level = 's')."
    ),
    ErrorCode.TIMEOUT: (
        "The function ran past its {limits.timeout_ms} ms wall-time deadline. Look for "
        "an unbounded loop; a function that stays within its instruction limit "
        "finishes far sooner."
    ),
    ErrorCode.LINEAR_MEMORY_LIMIT_EXCEEDED: (
        "The function needed more than {limits.linear_memory_bytes:,} bytes of linear "
        "memory. Avoid copying the whole input; stream or borrow it, and check the "
        "module's initial memory size."
    ),
    ErrorCode.STACK_LIMIT_EXCEEDED: (
        "The function exceeded the {limits.stack_bytes:,}-byte wasm stack (deep or "
        "unbounded recursion). Make the recursion iterative or bounded."
    ),
    ErrorCode.INPUT_TOO_LARGE: (
        "The input is larger than {limits.input_bytes:,} bytes. Request fewer fields in "
        "the input query."
    ),
    ErrorCode.OUTPUT_TOO_LARGE: (
        "The function wrote more than {limits.output_bytes:,} bytes to stdout and was "
        "stopped. Emit fewer operations, or merge targets into one candidate."
    ),
    ErrorCode.INVALID_OUTPUT: (
        "The function's stdout is not a JSON document. Write exactly one JSON value to "
        "stdout and send debugging output to stderr."
    ),
    ErrorCode.NONZERO_EXIT: (
        "The function exited with a non-zero status. Its logs (stderr) usually say why."
    ),
    ErrorCode.RUNTIME_ERROR: (
        "The function trapped (panic, abort, out-of-bounds access, ...). Its logs "
        "(stderr) usually say why."
    ),
    ErrorCode.INVALID_MODULE: "The module cannot be run.",
}
