"""Deterministic WASI preview1: the only host functions a WASI-ABI guest can call.

We do not use wasmtime's built-in WASI. Each allowlisted `wasi_snapshot_preview1`
function is defined once per Linker as a raw host callback (wasmtime's "unchecked"
C API), so that:

- stdin comes from an in-memory buffer and stdout/stderr go to capped buffers: the
  guest is stopped as soon as stdout exceeds the output limit, and stderr beyond the
  log limit is counted but not kept;
- there are no files (no preopens), no environment, no arguments, no sockets; clocks
  return a fixed instant and `random_get` a seeded stream, so the same module and input
  always give the same output and the same fuel;
- stopping the guest (proc_exit, output cap) returns a trap straight to wasmtime and
  records why in the per-run `WasiContext`. wasmtime-py's own host-function wrapper
  keeps the last Python exception in a process-wide global, which races when runs
  execute in parallel threads; the raw callbacks never raise.

Host functions find their run's context through a thread-local: wasmtime calls host
functions synchronously on the thread that called into wasm, and each run owns its
thread for its whole duration.

Every guest pointer is bounds-checked against the current memory size before the host
reads or writes it (EFAULT otherwise); iovec counts are capped (EINVAL) so that host
work per call stays bounded, because fuel only counts guest instructions.
"""

from __future__ import annotations

import ctypes
import random
import struct
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from typing import Any, Final, cast

import wasmtime
from wasmtime import _ffi as ffi

from functions_sdk.runner._native import held

WASI_MODULE: Final = "wasi_snapshot_preview1"

FIXED_TIME_NS: Final = 1_704_067_200_000_000_000
"""What every clock reads: 2024-01-01T00:00:00Z, in nanoseconds."""

CLOCK_RESOLUTION_NS: Final = 1_000
RANDOM_SEED: Final = 0xCA57
"""Seed of the per-run PRNG behind `random_get`: identical bytes in every run."""

MAX_IOVECS: Final = 1024
"""Largest iovec count accepted by fd_read / fd_write (POSIX IOV_MAX)."""

MAX_RANDOM_BYTES: Final = 65_536
"""Largest `random_get` request (EINVAL beyond; libc asks for at most 256 at a time)."""

# WASI errno values.
ESUCCESS: Final = 0
EBADF: Final = 8
EFAULT: Final = 21
EINVAL: Final = 28
ENOTSUP: Final = 58
ESPIPE: Final = 70

_FILETYPE_CHARACTER_DEVICE = 2
_RIGHT_FD_READ = 1 << 1
_RIGHT_FD_WRITE = 1 << 6
_U32 = 0xFFFF_FFFF
_MEMORY_NAME = b"memory"
_EXTERN_MEMORY = int(ffi.WASMTIME_EXTERN_MEMORY.value)
_IOVEC = struct.Struct("<II")


class StopReason(StrEnum):
    """Why a host function stopped the guest (stored on the `WasiContext`)."""

    EXIT = "exit"
    OUTPUT_LIMIT = "output_limit"
    HOST_FAULT = "host_fault"


class WasiContext:
    """Per-run state reachable from the host functions of the running thread."""

    __slots__ = (
        "_memory",
        "_rng",
        "exit_code",
        "host_fault",
        "log_limit",
        "log_total",
        "output_limit",
        "output_total",
        "stderr",
        "stdin",
        "stdin_pos",
        "stdout",
        "stop",
    )

    def __init__(self, stdin: bytes, *, output_limit: int, log_limit: int) -> None:
        self.stdin = stdin
        self.stdin_pos = 0
        self.stdout = bytearray()
        self.output_limit = output_limit
        self.output_total = 0
        self.stderr = bytearray()
        self.log_limit = log_limit
        self.log_total = 0
        self.exit_code: int | None = None
        self.stop: StopReason | None = None
        self.host_fault: str | None = None
        self._rng: random.Random | None = None
        self._memory: Any = None  # the instance's `memory` extern, looked up once per run

    def random_bytes(self, n: int) -> bytes:
        """The next `n` bytes of this run's seeded random stream."""
        if self._rng is None:
            self._rng = random.Random(RANDOM_SEED)
        return self._rng.randbytes(n)


_local = threading.local()


@contextmanager
def activate(ctx: WasiContext) -> Iterator[WasiContext]:
    """Make `ctx` the context of the host functions called on this thread."""
    previous = getattr(_local, "ctx", None)
    _local.ctx = ctx
    try:
        yield ctx
    finally:
        _local.ctx = previous


def _new_trap(message: str) -> int:
    raw = message.encode()
    trap = held.trap_new(raw, len(raw))
    value = ctypes.cast(trap, ctypes.c_void_p).value
    return int(value or 0)


def _memory(ctx: WasiContext, caller: Any) -> tuple[int, int]:
    """(base address, size) of the calling instance's exported memory, or (0, 0).

    The memory handle is looked up once per run; its base and size are read on every
    call because `memory.grow` may move and resize it.
    """
    item = ctx._memory
    if item is None:
        item = ffi.wasmtime_extern_t()
        found = held.caller_export_get(caller, _MEMORY_NAME, len(_MEMORY_NAME), ctypes.byref(item))
        if not found or cast(int, item.kind) != _EXTERN_MEMORY:
            return 0, 0
        ctx._memory = item
    context = held.caller_context(caller)
    handle = ctypes.byref(item.of.memory)
    size = int(held.memory_data_size(context, handle))
    base = ctypes.cast(held.memory_data(context, handle), ctypes.c_void_p).value
    return int(base or 0), size


def _in_bounds(ptr: int, length: int, size: int) -> bool:
    return ptr >= 0 and length >= 0 and ptr + length <= size


def _put_u32(base: int, ptr: int, value: int) -> None:
    ctypes.c_uint32.from_address(base + ptr).value = value & _U32


def _put_u64(base: int, ptr: int, value: int) -> None:
    ctypes.c_uint64.from_address(base + ptr).value = value


def _iovecs(base: int, size: int, iovs: int, count: int) -> list[tuple[int, int]] | int:
    """The iovec list, or an errno when it is malformed or out of bounds."""
    if count > MAX_IOVECS:
        return EINVAL
    if not _in_bounds(iovs, 8 * count, size):
        return EFAULT
    raw = ctypes.string_at(base + iovs, 8 * count) if count else b""
    vecs = list(_IOVEC.iter_unpack(raw))
    for ptr, length in vecs:
        if not _in_bounds(ptr, length, size):
            return EFAULT
    return vecs


# Each host function takes (ctx, caller, args) and returns an errno to store as the
# i32 result, or a `_Stop` carrying the trap to return to wasmtime.


class _Stop:
    __slots__ = ("trap",)

    def __init__(self, trap: int) -> None:
        self.trap = trap


HostFn = Callable[[WasiContext, Any, Any], "int | _Stop"]


def _args_sizes_get(ctx: WasiContext, caller: Any, args: Any) -> int | _Stop:
    # Also serves environ_sizes_get: no arguments, no environment.
    count_ptr, size_ptr = args[0].i32 & _U32, args[1].i32 & _U32
    base, size = _memory(ctx, caller)
    if not (_in_bounds(count_ptr, 4, size) and _in_bounds(size_ptr, 4, size)):
        return EFAULT
    _put_u32(base, count_ptr, 0)
    _put_u32(base, size_ptr, 0)
    return ESUCCESS


def _args_get(ctx: WasiContext, caller: Any, args: Any) -> int | _Stop:
    # Also serves environ_get: zero entries, nothing to write.
    return ESUCCESS


def _clock_res_get(ctx: WasiContext, caller: Any, args: Any) -> int | _Stop:
    ptr = args[1].i32 & _U32
    base, size = _memory(ctx, caller)
    if not _in_bounds(ptr, 8, size):
        return EFAULT
    _put_u64(base, ptr, CLOCK_RESOLUTION_NS)
    return ESUCCESS


def _clock_time_get(ctx: WasiContext, caller: Any, args: Any) -> int | _Stop:
    ptr = args[2].i32 & _U32
    base, size = _memory(ctx, caller)
    if not _in_bounds(ptr, 8, size):
        return EFAULT
    _put_u64(base, ptr, FIXED_TIME_NS)
    return ESUCCESS


def _fd_close(ctx: WasiContext, caller: Any, args: Any) -> int | _Stop:
    return ESUCCESS if 0 <= args[0].i32 <= 2 else EBADF


def _fd_fdstat_get(ctx: WasiContext, caller: Any, args: Any) -> int | _Stop:
    fd, ptr = args[0].i32, args[1].i32 & _U32
    if not 0 <= fd <= 2:
        return EBADF
    base, size = _memory(ctx, caller)
    if not _in_bounds(ptr, 24, size):
        return EFAULT
    rights = _RIGHT_FD_READ if fd == 0 else _RIGHT_FD_WRITE
    held.memmove(
        base + ptr, struct.pack("<BxHxxxxQQ", _FILETYPE_CHARACTER_DEVICE, 0, rights, 0), 24
    )
    return ESUCCESS


def _fd_prestat_get(ctx: WasiContext, caller: Any, args: Any) -> int | _Stop:
    # No preopened directories: libc's preopen scan ends at the first EBADF.
    return EBADF


def _fd_seek(ctx: WasiContext, caller: Any, args: Any) -> int | _Stop:
    return ESPIPE if 0 <= args[0].i32 <= 2 else EBADF


def _fd_read(ctx: WasiContext, caller: Any, args: Any) -> int | _Stop:
    fd, iovs, count, nread_ptr = (
        args[0].i32,
        args[1].i32 & _U32,
        args[2].i32 & _U32,
        args[3].i32 & _U32,
    )
    if fd != 0:
        return EBADF
    base, size = _memory(ctx, caller)
    if not _in_bounds(nread_ptr, 4, size):
        return EFAULT
    vecs = _iovecs(base, size, iovs, count)
    if isinstance(vecs, int):
        return vecs
    total = 0
    data, pos = ctx.stdin, ctx.stdin_pos
    for ptr, length in vecs:
        chunk = data[pos : pos + length]
        if chunk:
            held.memmove(base + ptr, chunk, len(chunk))
        pos += len(chunk)
        total += len(chunk)
        if len(chunk) < length:
            break
    ctx.stdin_pos = pos
    _put_u32(base, nread_ptr, total)
    return ESUCCESS


def _fd_write(ctx: WasiContext, caller: Any, args: Any) -> int | _Stop:
    fd, iovs, count, written_ptr = (
        args[0].i32,
        args[1].i32 & _U32,
        args[2].i32 & _U32,
        args[3].i32 & _U32,
    )
    if fd not in (1, 2):
        return EBADF
    base, size = _memory(ctx, caller)
    if not _in_bounds(written_ptr, 4, size):
        return EFAULT
    vecs = _iovecs(base, size, iovs, count)
    if isinstance(vecs, int):
        return vecs
    total = sum(length for _, length in vecs)
    if fd == 1:
        ctx.output_total += total
        room = ctx.output_limit - len(ctx.stdout)
        for ptr, length in vecs:
            if room <= 0:
                break
            take = min(length, room)
            ctx.stdout += ctypes.string_at(base + ptr, take)
            room -= take
        if ctx.output_total > ctx.output_limit:
            ctx.stop = StopReason.OUTPUT_LIMIT
            return _Stop(_new_trap("cartwheel: output limit exceeded"))
    else:
        ctx.log_total += total
        room = ctx.log_limit - len(ctx.stderr)
        for ptr, length in vecs:
            if room <= 0:
                break
            take = min(length, room)
            ctx.stderr += ctypes.string_at(base + ptr, take)
            room -= take
    _put_u32(base, written_ptr, total)
    return ESUCCESS


def _poll_oneoff(ctx: WasiContext, caller: Any, args: Any) -> int | _Stop:
    # No timers or fds to wait on: sleeping is not supported.
    return ENOTSUP


def _proc_exit(ctx: WasiContext, caller: Any, args: Any) -> int | _Stop:
    ctx.exit_code = args[0].i32
    ctx.stop = StopReason.EXIT
    return _Stop(_new_trap("cartwheel: proc_exit"))


def _random_get(ctx: WasiContext, caller: Any, args: Any) -> int | _Stop:
    ptr, length = args[0].i32 & _U32, args[1].i32 & _U32
    if length > MAX_RANDOM_BYTES:
        return EINVAL
    base, size = _memory(ctx, caller)
    if not _in_bounds(ptr, length, size):
        return EFAULT
    if length:
        held.memmove(base + ptr, ctx.random_bytes(length), length)
    return ESUCCESS


def _sched_yield(ctx: WasiContext, caller: Any, args: Any) -> int | _Stop:
    return ESUCCESS


_I32 = "i32"
_I64 = "i64"

# name -> (params, has_result, implementation). The allowlist: nothing else is linked.
FUNCTIONS: Final[dict[str, tuple[tuple[str, ...], bool, HostFn]]] = {
    "args_get": ((_I32, _I32), True, _args_get),
    "args_sizes_get": ((_I32, _I32), True, _args_sizes_get),
    "environ_get": ((_I32, _I32), True, _args_get),
    "environ_sizes_get": ((_I32, _I32), True, _args_sizes_get),
    "clock_res_get": ((_I32, _I32), True, _clock_res_get),
    "clock_time_get": ((_I32, _I64, _I32), True, _clock_time_get),
    "fd_close": ((_I32,), True, _fd_close),
    "fd_fdstat_get": ((_I32, _I32), True, _fd_fdstat_get),
    "fd_prestat_get": ((_I32, _I32), True, _fd_prestat_get),
    "fd_prestat_dir_name": ((_I32, _I32, _I32), True, _fd_prestat_get),
    "fd_read": ((_I32, _I32, _I32, _I32), True, _fd_read),
    "fd_seek": ((_I32, _I64, _I32, _I32), True, _fd_seek),
    "fd_write": ((_I32, _I32, _I32, _I32), True, _fd_write),
    "poll_oneoff": ((_I32, _I32, _I32, _I32), True, _poll_oneoff),
    "proc_exit": ((_I32,), False, _proc_exit),
    "random_get": ((_I32, _I32), True, _random_get),
    "sched_yield": ((), True, _sched_yield),
}
"""The WASI preview1 allowlist: name → (param types, returns errno, implementation)."""


def _valtype(name: str) -> wasmtime.ValType:
    return wasmtime.ValType.i64() if name == _I64 else wasmtime.ValType.i32()


def signature(name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(param types, result types) of allowlisted function `name`, as wasmtime-py prints
    them (`"i32"`, `"i64"`)."""
    params, has_result, _ = FUNCTIONS[name]
    return params, ((_I32,) if has_result else ())


def func_type(name: str) -> wasmtime.FuncType:
    """The wasm type of allowlisted function `name`."""
    params, has_result, _ = FUNCTIONS[name]
    results = [wasmtime.ValType.i32()] if has_result else []
    return wasmtime.FuncType([_valtype(p) for p in params], results)


def _callback(name: str, impl: HostFn, has_result: bool) -> Any:
    @ffi.wasmtime_func_unchecked_callback_t  # type: ignore[untyped-decorator]
    def callback(env: Any, caller: Any, args: Any, nargs: int) -> int:
        ctx: WasiContext | None = getattr(_local, "ctx", None)
        if ctx is None:
            return _new_trap(f"cartwheel: {name} called outside of a run")
        try:
            outcome = impl(ctx, caller, args)
        except BaseException as exc:  # a host bug must trap the guest, never unwind into C
            ctx.stop = StopReason.HOST_FAULT
            ctx.host_fault = f"{name}: {type(exc).__name__}: {exc}"
            return _new_trap("cartwheel: host function failed")
        if isinstance(outcome, _Stop):
            return outcome.trap
        if has_result:
            args[0].i32 = outcome
        return 0

    return callback


_NO_FINALIZER = ctypes.CFUNCTYPE(None, ctypes.c_void_p)(0)
_CALLBACKS: Final = {
    name: _callback(name, impl, has_result) for name, (_, has_result, impl) in FUNCTIONS.items()
}


def define(linker: wasmtime.Linker) -> None:
    """Define every allowlisted WASI function in `linker` (once per Linker).

    Raises `wasmtime.WasmtimeError` if the linker already defines one of them.
    """
    module = WASI_MODULE.encode()
    for name, callback in _CALLBACKS.items():
        raw = name.encode()
        # A FuncType binds to the first engine it is used with (a later engine would
        # abort the process on an assertion): build fresh ones for every linker.
        ty = func_type(name)
        error = ffi.wasmtime_linker_define_func_unchecked(
            linker.ptr(),
            module,
            len(module),
            raw,
            len(raw),
            ty.ptr(),
            callback,
            None,
            _NO_FINALIZER,
        )
        if error:
            raise wasmtime.WasmtimeError._from_ptr(error)
