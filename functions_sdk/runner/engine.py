"""wasmtime engines, their linkers and the process's epoch ticker.

One `RunnerEngine` per distinct engine configuration (only the wasm stack limit varies
between runs, because wasmtime fixes `max_wasm_stack` per Engine), created once and
shared by every thread. Each carries a Linker holding our deterministic WASI functions,
defined once, and a `fingerprint` that keys precompiled artifacts: an artifact only
loads into an engine with the same configuration and wasmtime version.

Wall-time deadlines use epoch interruption: one daemon thread per process increments
the epoch of every engine each `TICK_MS`; a run's deadline is expressed in ticks. After
`fork()` (RQ work horses) the child restarts the ticker, since threads do not survive.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.metadata
import math
import os
import platform
import threading
import time
from dataclasses import dataclass, field
from typing import Final

import wasmtime

from functions_sdk.limits import Limits
from functions_sdk.runner import wasi
from functions_sdk.runner.errors import InvalidLimitsError

TICK_MS: Final = 10
"""Epoch tick period. Deadlines are rounded up to whole ticks, plus one tick of slack."""

MIN_STACK_BYTES: Final = 16_384
MAX_STACK_BYTES: Final = 2_097_152
"""wasmtime refuses (by aborting the process) a `max_wasm_stack` of zero or above its
async stack size (2 MiB), so stack limits are checked against this range first."""

_MAX_LIMIT: Final = 2**62  # wasmtime takes fuel and sizes as 64-bit integers

MAX_TABLE_ELEMENTS: Final = 100_000
"""Cap on wasm table elements per store (8 bytes each of host memory)."""

WASMTIME_VERSION: Final = importlib.metadata.version("wasmtime")


@dataclass(frozen=True, slots=True)
class RunnerEngine:
    """An Engine configured for sandboxed runs, with its Linker and fingerprint."""

    engine: wasmtime.Engine = field(repr=False)
    linker: wasmtime.Linker = field(repr=False)
    stack_bytes: int
    fingerprint: str

    def deadline_ticks(self, timeout_ms: int) -> int:
        """Epoch ticks for a wall-time deadline of `timeout_ms`."""
        return max(1, math.ceil(timeout_ms / TICK_MS)) + 1


def _config(stack_bytes: int) -> wasmtime.Config:
    config = wasmtime.Config()
    config.consume_fuel = True
    config.epoch_interruption = True
    config.max_wasm_stack = stack_bytes
    config.cranelift_opt_level = "speed"
    # Features that could sidestep the per-store limits or determinism.
    config.wasm_threads = False
    config.shared_memory = False
    config.wasm_relaxed_simd = False
    config.cranelift_nan_canonicalization = True
    return config


def _fingerprint(stack_bytes: int) -> str:
    parts = (
        f"wasmtime-py={WASMTIME_VERSION}",
        f"machine={platform.machine()}",
        "fuel=1",
        "epoch=1",
        f"max_wasm_stack={stack_bytes}",
        "opt=speed",
        "threads=0",
        "relaxed_simd=0",
        "nan_canon=1",
    )
    return hashlib.sha256(";".join(parts).encode()).hexdigest()[:32]


class _EpochTicker:
    """One daemon thread per process that advances every registered engine's epoch."""

    def __init__(self) -> None:
        self._engines: list[wasmtime.Engine] = []
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def register(self, engine: wasmtime.Engine) -> None:
        with self._lock:
            self._engines.append(engine)
            self._ensure_started()

    def _ensure_started(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._loop, name="cartwheel-epoch-ticker", daemon=True
            )
            self._thread.start()

    def _loop(self) -> None:
        period = TICK_MS / 1000
        while True:
            time.sleep(period)
            for engine in tuple(self._engines):
                engine.increment_epoch()

    def after_fork_in_child(self) -> None:
        self._lock = threading.Lock()
        self._thread = None
        if self._engines:
            self._ensure_started()


_TICKER = _EpochTicker()
os.register_at_fork(after_in_child=_TICKER.after_fork_in_child)

_ENGINES: dict[int, RunnerEngine] = {}
_ENGINES_LOCK = threading.Lock()


@functools.lru_cache(maxsize=256)
def check_limits(limits: Limits) -> None:
    """Raise `InvalidLimitsError` unless every limit can be enforced as given.

    Memoized: `Limits` is frozen, and a server reuses a handful of them.

    A negative memory limit would read as "no limit" to wasmtime's store limiter and a
    stack limit outside [MIN_STACK_BYTES, MAX_STACK_BYTES] aborts the process, so both
    are refused here, with the other sizes that must be positive.
    """
    problems = [
        f"{name} must be positive (got {value})"
        for name, value in (
            ("instructions", limits.instructions),
            ("linear_memory_bytes", limits.linear_memory_bytes),
            ("module_bytes", limits.module_bytes),
            ("timeout_ms", limits.timeout_ms),
        )
        if value <= 0
    ]
    problems += [
        f"{name} must not be negative (got {value})"
        for name, value in (
            ("input_bytes", limits.input_bytes),
            ("output_bytes", limits.output_bytes),
            ("log_bytes", limits.log_bytes),
        )
        if value < 0
    ]
    problems += [
        f"{field.name} must be below 2**62 (got {getattr(limits, field.name)})"
        for field in dataclasses.fields(limits)
        if getattr(limits, field.name) >= _MAX_LIMIT
    ]
    if not MIN_STACK_BYTES <= limits.stack_bytes <= MAX_STACK_BYTES:
        problems.append(
            f"stack_bytes must be between {MIN_STACK_BYTES:,} and {MAX_STACK_BYTES:,} "
            f"(got {limits.stack_bytes:,})"
        )
    if problems:
        raise InvalidLimitsError(
            f"Invalid limits: {'; '.join(problems)}. Fix the target's or the run's limits.",
            problems=problems,
        )


def get_engine(stack_bytes: int) -> RunnerEngine:
    """The shared engine for a wasm stack limit of `stack_bytes` (created on first use).

    Raises `InvalidLimitsError` for a stack limit outside [MIN_STACK_BYTES,
    MAX_STACK_BYTES].
    """
    found = _ENGINES.get(stack_bytes)
    if found is not None:
        return found
    if not MIN_STACK_BYTES <= stack_bytes <= MAX_STACK_BYTES:
        check_limits(Limits(stack_bytes=stack_bytes))
    with _ENGINES_LOCK:
        found = _ENGINES.get(stack_bytes)
        if found is None:
            engine = wasmtime.Engine(_config(stack_bytes))
            linker = wasmtime.Linker(engine)
            wasi.define(linker)
            found = RunnerEngine(engine, linker, stack_bytes, _fingerprint(stack_bytes))
            _TICKER.register(engine)
            _ENGINES[stack_bytes] = found
        return found
