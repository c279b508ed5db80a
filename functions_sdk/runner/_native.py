"""The hot path of a run through wasmtime's C API (`wasmtime._ffi`, pinned `<51`).

wasmtime-py's object layer costs tens of microseconds per run (an export map, type
lookups, value conversions) while holding the GIL, and its `enter_wasm` re-raises the
last Python exception of *any* thread's host function. These helpers instantiate,
look up the entry export, call it and read the memory size with a handful of C calls
and turn a failure into `(trap code, message)` without touching that global.

`held` holds the same C functions bound through `ctypes.PyDLL`, which keeps the GIL
across the call, for the ones that take nanoseconds (fuel, limits, export lookup,
memory base and size). ctypes otherwise releases and re-acquires the GIL around every
foreign call; with runs in several threads each of those hand-offs is a context
switch. Calls that execute guest code (instantiate, call) or may take long (store
deletion) keep releasing it.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass
from typing import Any, Final

import wasmtime
from wasmtime import _bindings
from wasmtime import _ffi as ffi

_HELD_LIBRARY: Final = ctypes.PyDLL(str(ffi.filename))


def _held(name: str) -> Any:
    # Bound exactly as wasmtime-py binds it (same argtypes / restype), GIL kept.
    source = getattr(_bindings, f"_{name}")
    function = getattr(_HELD_LIBRARY, name)
    function.restype = source.restype
    function.argtypes = source.argtypes
    return function


class _Held:
    """wasmtime C functions that never block, called without releasing the GIL."""

    def __init__(self) -> None:
        self.caller_context = _held("wasmtime_caller_context")
        self.caller_export_get = _held("wasmtime_caller_export_get")
        self.instance_export_get = _held("wasmtime_instance_export_get")
        self.memory_data = _held("wasmtime_memory_data")
        self.memory_data_size = _held("wasmtime_memory_data_size")
        self.context_set_fuel = _held("wasmtime_context_set_fuel")
        self.context_get_fuel = _held("wasmtime_context_get_fuel")
        self.context_set_epoch_deadline = _held("wasmtime_context_set_epoch_deadline")
        self.store_limiter = _held("wasmtime_store_limiter")
        self.trap_new = _held("wasmtime_trap_new")
        self.memmove = ctypes.PYFUNCTYPE(
            ctypes.c_void_p, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t
        )(ctypes._memmove_addr)  # type: ignore[attr-defined]


held: Final = _Held()

_EXTERN_FUNC: Final = int(ffi.WASMTIME_EXTERN_FUNC.value)
_EXTERN_MEMORY: Final = int(ffi.WASMTIME_EXTERN_MEMORY.value)
_MEMORY: Final = b"memory"


@dataclass(frozen=True, slots=True)
class Failure:
    """A trap (with its code, None for traps raised by our host functions) or another
    engine error (`trap=False`, e.g. a failed instantiation)."""

    trap: bool
    trap_code: wasmtime.TrapCode | None
    message: str


def _failure(
    error: ctypes._Pointer[ffi.wasmtime_error_t], trap: ctypes._Pointer[ffi.wasm_trap_t]
) -> Failure | None:
    if error:
        err = wasmtime.WasmtimeError._from_ptr(error)
        return Failure(trap=False, trap_code=None, message=str(err))
    if trap:
        t = wasmtime.Trap._from_ptr(trap)
        return Failure(trap=True, trap_code=t.trap_code, message=t.message)
    return None


def instantiate(
    pre: wasmtime.InstancePre, store: wasmtime.Store
) -> tuple[ffi.wasmtime_instance_t | None, Failure | None]:
    """Instantiate pre-linked `pre` in `store` (runs a start function, if any)."""
    instance = ffi.wasmtime_instance_t()
    trap = ctypes.POINTER(ffi.wasm_trap_t)()
    error = ffi.wasmtime_instance_pre_instantiate(
        pre.ptr(), store._context(), ctypes.byref(instance), ctypes.byref(trap)
    )
    failure = _failure(error, trap)
    return (None, failure) if failure is not None else (instance, None)


def call(store: wasmtime.Store, instance: ffi.wasmtime_instance_t, export: bytes) -> Failure | None:
    """Call the `() -> ()` function `export` of `instance` (checked at load time)."""
    item = ffi.wasmtime_extern_t()
    found = held.instance_export_get(
        store._context(), ctypes.byref(instance), export, len(export), ctypes.byref(item)
    )
    if not found or int(item.kind) != _EXTERN_FUNC:
        return Failure(trap=False, trap_code=None, message=f"no exported function {export!r}")
    trap = ctypes.POINTER(ffi.wasm_trap_t)()
    error = ffi.wasmtime_func_call(
        store._context(), ctypes.byref(item.of.func), None, 0, None, 0, ctypes.byref(trap)
    )
    return _failure(error, trap)


def memory_size(store: wasmtime.Store, instance: ffi.wasmtime_instance_t) -> int | None:
    """Current size in bytes of the instance's exported `memory`, None without one."""
    item = ffi.wasmtime_extern_t()
    found = held.instance_export_get(
        store._context(), ctypes.byref(instance), _MEMORY, len(_MEMORY), ctypes.byref(item)
    )
    if not found or int(item.kind) != _EXTERN_MEMORY:
        return None
    return int(held.memory_data_size(store._context(), ctypes.byref(item.of.memory)))


def new_store(
    engine: wasmtime.Engine, *, memory: int, tables: int, fuel: int, ticks: int
) -> wasmtime.Store:
    """A fresh Store with its limits, fuel and epoch deadline set.

    Raises `wasmtime.WasmtimeError` if the engine does not consume fuel.
    """
    store = wasmtime.Store(engine)
    held.store_limiter(store.ptr(), memory, tables, 1, -1, 1)
    error = held.context_set_fuel(store._context(), fuel)
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)
    held.context_set_epoch_deadline(store._context(), ticks)
    return store


def fuel_left(store: wasmtime.Store) -> int:
    """Fuel remaining in `store`."""
    remaining = ctypes.c_uint64(0)
    error = held.context_get_fuel(store._context(), ctypes.byref(remaining))
    if error:
        raise wasmtime.WasmtimeError._from_ptr(error)
    return int(remaining.value)
