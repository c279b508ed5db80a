"""Extism-ABI modules (they import `extism:host/env`): run through the Extism SDK.

Every run gets a FRESH plugin instance from a shared `CompiledPlugin`: a reused plugin
keeps its linear memory and globals between calls, which must never leak state across
runs or shops. The compiled plugin carries the limits Extism can enforce:

- instructions: the fuel limit of `extism_compiled_plugin_new_with_fuel_limit` (C API,
  reached through the SDK's cffi library); consumption is not reported, so
  `fuel_consumed` is None and `fuel_exact` False;
- wall time: the manifest's `timeout_ms`;
- linear memory: the manifest's `memory.max_pages` (whole 64 KiB pages);
- input size before the call; output size after it (Extism cannot stop a guest
  early, so an oversized output is detected once the call returns).

Not enforceable through Extism, documented in docs/RUNNER.md: the wasm stack limit
(Extism uses wasmtime's default), peak memory (unknown), logs (the kernel's log_*
functions go to Extism's process-wide logger, so `logs` is empty). No host functions
(`functions=[]`), no WASI, no HTTP, no config.

Extism writes a compile cache under the home directory unless `EXTISM_CACHE_CONFIG`
says otherwise; we compile once per process and module instead, so it is disabled
(empty) unless the operator set it.
"""

from __future__ import annotations

import base64
import os
import threading
import time
from typing import Any

import orjson

os.environ.setdefault("EXTISM_CACHE_CONFIG", "")

from extism.extism import CompiledPlugin, _ffi, _lib

from functions_sdk.limits import Limits
from functions_sdk.runner import errors
from functions_sdk.runner.module import CompiledModule
from functions_sdk.runner.result import ErrorCode, RunResult, RunStatus

WASM_PAGE_BYTES = 65_536

_PluginKey = tuple[str, int, int, int]
_PLUGINS: dict[_PluginKey, CompiledPlugin] = {}
_PLUGINS_LOCK = threading.Lock()
MAX_COMPILED_PLUGINS = 256
"""Compiled plugins kept per process (one per module × limits); oldest dropped first."""


class ExtismLoadError(Exception):
    """Extism refused the module (reported as INVALID_MODULE)."""


def memory_pages(limits: Limits) -> int:
    """Whole wasm pages that fit in the linear-memory limit."""
    return max(1, limits.linear_memory_bytes // WASM_PAGE_BYTES)


def compiled_plugin(module: CompiledModule, limits: Limits) -> CompiledPlugin:
    """The shared `CompiledPlugin` of `module` under `limits` (compiled on first use).

    Raises `ExtismLoadError` when Extism cannot compile or link the module.
    """
    key = (module.sha256, memory_pages(limits), limits.timeout_ms, limits.instructions)
    found = _PLUGINS.get(key)
    if found is not None:
        return found
    with _PLUGINS_LOCK:
        found = _PLUGINS.get(key)
        if found is None:
            found = _compile(module, limits)
            if len(_PLUGINS) >= MAX_COMPILED_PLUGINS:
                _PLUGINS.pop(next(iter(_PLUGINS)))
            _PLUGINS[key] = found
        return found


def _compile(module: CompiledModule, limits: Limits) -> CompiledPlugin:
    manifest = {
        "wasm": [{"data": base64.b64encode(module.wasm).decode("ascii")}],
        "memory": {"max_pages": memory_pages(limits)},
        "timeout_ms": limits.timeout_ms,
        "allowed_hosts": [],
        "allowed_paths": {},
        "config": {},
    }
    raw = orjson.dumps(manifest)
    errmsg = _ffi.new("char**")
    pointer = _lib.extism_compiled_plugin_new_with_fuel_limit(
        raw, len(raw), _ffi.NULL, 0, False, limits.instructions, errmsg
    )
    if pointer == _ffi.NULL:
        message = _ffi.string(errmsg[0]).decode("utf-8", "replace")
        _lib.extism_plugin_new_error_free(errmsg[0])
        raise ExtismLoadError(message)
    # Wrap the raw pointer in the SDK's class so that its finalizer frees it.
    plugin: CompiledPlugin = CompiledPlugin.__new__(CompiledPlugin)
    plugin.pointer = pointer
    plugin.functions = []
    return plugin


def _call(compiled: CompiledPlugin, export: str, input: bytes) -> tuple[int, str | None, bytes]:
    """One call on a fresh plugin instance: (return code, error message, output)."""
    errmsg = _ffi.new("char**")
    plugin: Any = _lib.extism_plugin_new_from_compiled(compiled.pointer, errmsg)
    if plugin == _ffi.NULL:
        message = _ffi.string(errmsg[0]).decode("utf-8", "replace")
        _lib.extism_plugin_new_error_free(errmsg[0])
        raise ExtismLoadError(message)
    try:
        rc = int(_lib.extism_plugin_call(plugin, export.encode(), input, len(input)))
        error = _lib.extism_plugin_error(plugin)
        message = None if error == _ffi.NULL else _ffi.string(error).decode("utf-8", "replace")
        length = int(_lib.extism_plugin_output_length(plugin))
        data = _lib.extism_plugin_output_data(plugin)
        output = bytes(_ffi.buffer(data, length)) if length else b""
        return rc, message, output
    finally:
        _lib.extism_plugin_free(plugin)


def run_extism(
    module: CompiledModule, input: bytes, limits: Limits, export: str, started: float
) -> RunResult:
    """Run an Extism-ABI module's `export` on `input` under `limits` (see module doc)."""
    code: ErrorCode | None = None
    message = ""
    output = b""
    try:
        rc, error, output = _call(compiled_plugin(module, limits), export, input)
    except ExtismLoadError as exc:
        code = ErrorCode.INVALID_MODULE
        message = f"Extism could not load the module: {exc}"
    else:
        if error is not None:
            code = errors.extism_error_code(error)
            detail = error.splitlines()[0]
            if code is ErrorCode.NONZERO_EXIT:
                detail = f"`{export}` returned {rc}: {detail}"
            message = errors.describe(code, limits, detail=detail)
        elif rc != 0:
            code = ErrorCode.NONZERO_EXIT
            message = errors.describe(code, limits, detail=f"`{export}` returned {rc}")
    output_total = len(output)
    if code is None and output_total > limits.output_bytes:
        code = ErrorCode.OUTPUT_TOO_LARGE
        message = errors.describe(code, limits, detail=f"{output_total:,} bytes")
    output = output[: limits.output_bytes]
    if code is None:
        try:
            orjson.loads(output)
        except orjson.JSONDecodeError as exc:
            code = ErrorCode.INVALID_OUTPUT
            message = errors.describe(code, limits, detail=str(exc))
    return RunResult(
        status=RunStatus.SUCCEEDED if code is None else RunStatus.FAILED,
        error_code=code,
        message=message,
        output=output,
        logs="",
        logs_truncated=False,
        logs_bytes=0,
        fuel_consumed=None,
        fuel_exact=False,
        peak_memory_bytes=None,
        duration_ms=(time.perf_counter() - started) * 1000,
        input_bytes=len(input),
        output_bytes=output_total,
        module_bytes=module.size,
        limits=limits,
        abi="extism",
        export=export,
        module_sha256=module.sha256,
    )
