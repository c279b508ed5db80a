"""Loading a module: validation, the import allowlist, ABI detection, precompiled cache.

`load_module()` is the deploy-time gate and the run-time loader: it checks the size,
the wasm magic and validity, that every import is one we provide (the deterministic
WASI allowlist, or the Extism kernel), and the entry export and its signature. It then
compiles, or loads a precompiled artifact from a `ModuleCache`.

`ModuleCache` keeps artifacts on disk (shared by the processes of a node) and in an
in-process LRU bounded by bytes. Deserializing a wasmtime artifact runs native code
from it, so an artifact is loaded only if it carries a valid HMAC-SHA256, computed
with a secret the platform holds, over its cache key and bytes: truncated, corrupted,
foreign or tampered files are recompiled, never deserialized.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

import wasmtime

from functions_sdk.limits import Limits
from functions_sdk.runner import wasi
from functions_sdk.runner.engine import RunnerEngine, check_limits, get_engine
from functions_sdk.runner.errors import InvalidModuleError, ModuleCacheError

Abi = Literal["wasi", "extism"]

WASM_MAGIC: Final = b"\0asm"
WASM_CORE_VERSION: Final = b"\x01\x00\x00\x00"
EXTISM_MODULE: Final = "extism:host/env"

DEFAULT_EXPORTS: Final[dict[str, str]] = {"wasi": "_start", "extism": "run"}
"""Entry export used when none is named: a WASI command's `_start`, Extism's `run`."""

EXTISM_KERNEL: Final = frozenset(
    {
        "alloc",
        "free",
        "length",
        "length_unsafe",
        "load_u8",
        "load_u64",
        "store_u8",
        "store_u64",
        "input_length",
        "input_load_u8",
        "input_load_u64",
        "input_offset",
        "output_set",
        "output_offset",
        "output_length",
        "error_set",
        "error_get",
        "config_get",
        "var_get",
        "var_set",
        "log_trace",
        "log_debug",
        "log_info",
        "log_warn",
        "log_error",
        "get_log_level",
    }
)
"""The Extism kernel functions an Extism-ABI module may import (no `http_request`)."""

DEFAULT_MEMORY_CACHE_BYTES: Final = 256_000_000
"""In-process artifact cache bound (sum of serialized artifact sizes)."""


@dataclass(eq=False)
class CompiledModule:
    """A validated, compiled module, safe to share between threads and runs.

    `sha256` is the hex digest of the wasm bytes, `abi` "wasi" or "extism" (detected
    from the imports), `size` the module size in bytes, `exports` the exported function
    names, `entry` the entry export checked at load time.
    """

    sha256: str
    abi: Abi
    size: int
    exports: tuple[str, ...]
    imports: tuple[str, ...]
    entry: str
    memory_min_bytes: int
    wasm: bytes = field(repr=False)
    _cache: ModuleCache | None = field(default=None, repr=False)
    _compiled: dict[int, tuple[wasmtime.Module, wasmtime.InstancePre]] = field(
        default_factory=dict, repr=False
    )
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _export_types: dict[str, wasmtime.FuncType] = field(default_factory=dict, repr=False)
    _checked_exports: set[str] = field(default_factory=set, repr=False)

    def prepared(self, engine: RunnerEngine) -> tuple[wasmtime.Module, wasmtime.InstancePre]:
        """The module compiled for `engine` and pre-linked with our WASI functions."""
        found = self._compiled.get(engine.stack_bytes)
        if found is not None:
            return found
        with self._lock:
            found = self._compiled.get(engine.stack_bytes)
            if found is None:
                module = _compile(engine, self.wasm, self.sha256, self._cache)
                found = (module, engine.linker.instantiate_pre(module))
                self._compiled[engine.stack_bytes] = found
            return found

    def check_export(self, name: str) -> None:
        """Raise `InvalidModuleError` (MISSING_EXPORT) unless `name` is a callable entry
        point for this ABI: `() -> ()` for WASI, `() -> i32` for Extism."""
        if name in self._checked_exports:
            return
        ty = self._export_types.get(name)
        if ty is None:
            raise InvalidModuleError(
                f"The module has no exported function `{name}`. Exported functions: "
                f"{', '.join(self.exports) or 'none'}. Pass the right --export, or export "
                f"`{name}` from your code.",
                code="MISSING_EXPORT",
                export=name,
            )
        expected = "() -> ()" if self.abi == "wasi" else "() -> i32"
        params = [str(p) for p in ty.params]
        results = [str(r) for r in ty.results]
        ok = not params and (results == [] if self.abi == "wasi" else results == ["i32"])
        if not ok:
            raise InvalidModuleError(
                f"The export `{name}` has type ({', '.join(params)}) -> "
                f"({', '.join(results)}); a {self.abi} entry point must be {expected}.",
                code="MISSING_EXPORT",
                export=name,
            )
        self._checked_exports.add(name)


def load_module(
    wasm: bytes,
    *,
    limits: Limits = Limits(),  # noqa: B008 — Limits is frozen
    cache: ModuleCache | None = None,
    export: str | None = None,
) -> CompiledModule:
    """Validate and compile `wasm` (or load its precompiled artifact from `cache`).

    Checks, in order: size (MODULE_TOO_LARGE), the wasm magic and core-module version,
    wasm validity (INVALID_MODULE), every import against the allowlist
    (FORBIDDEN_IMPORT, naming the import), the entry export `export` (default `_start`
    for WASI, `run` for Extism) and its signature (MISSING_EXPORT).

    Raises `InvalidModuleError` with one of those codes, and `InvalidLimitsError` for
    limits the runner cannot enforce.
    """
    check_limits(limits)
    wasm = bytes(wasm)
    if len(wasm) > limits.module_bytes:
        raise InvalidModuleError(
            f"The module is {len(wasm):,} bytes; the limit is {limits.module_bytes:,}. "
            "Build with size optimizations (Rust: opt-level = 'z', lto = true, strip = "
            "true; C: -Oz -s) and drop unused dependencies.",
            code="MODULE_TOO_LARGE",
            size=len(wasm),
            limit=limits.module_bytes,
        )
    if not wasm.startswith(WASM_MAGIC):
        raise InvalidModuleError(
            "The file is not a WebAssembly binary (it does not start with \\0asm). "
            "Pass the compiled .wasm file, not source or .wat text.",
            code="INVALID_MODULE",
        )
    if wasm[4:8] != WASM_CORE_VERSION:
        raise InvalidModuleError(
            "The file is a WebAssembly component or an unknown wasm version; Cartwheel "
            "runs core modules (Rust: --target wasm32-wasi; C: clang --target=wasm32-wasi).",
            code="INVALID_MODULE",
        )
    engine = get_engine(limits.stack_bytes)
    sha256 = hashlib.sha256(wasm).hexdigest()
    try:
        # Compiling validates; a cached artifact was compiled from these very bytes.
        module = _compile(engine, wasm, sha256, cache)
    except wasmtime.WasmtimeError as exc:
        raise InvalidModuleError(
            f"The module is not valid WebAssembly: {exc}. Rebuild it with a supported toolchain.",
            code="INVALID_MODULE",
        ) from exc
    abi, imports = _check_imports(module)
    exports: list[str] = []
    export_types: dict[str, wasmtime.FuncType] = {}
    memory_min = 0
    has_memory = False
    for item in module.exports:
        ty = item.type
        if isinstance(ty, wasmtime.FuncType):
            exports.append(item.name)
            export_types[item.name] = ty
        elif isinstance(ty, wasmtime.MemoryType) and item.name == "memory":
            has_memory = True
            memory_min = ty.limits.min * 65_536
    if abi == "wasi" and imports and not has_memory:
        raise InvalidModuleError(
            "The module imports WASI functions but exports no memory named `memory`; "
            "WASI needs it to pass stdin/stdout buffers. Build it as a WASI command.",
            code="INVALID_MODULE",
        )
    compiled = CompiledModule(
        sha256=sha256,
        abi=abi,
        size=len(wasm),
        exports=tuple(exports),
        imports=imports,
        entry=export or DEFAULT_EXPORTS[abi],
        memory_min_bytes=memory_min,
        wasm=wasm,
        _cache=cache,
        _export_types=export_types,
    )
    compiled.check_export(compiled.entry)
    if abi == "wasi":
        compiled._compiled[engine.stack_bytes] = (module, engine.linker.instantiate_pre(module))
    return compiled


def _check_imports(module: wasmtime.Module) -> tuple[Abi, tuple[str, ...]]:
    names: list[str] = []
    abi: Abi = "extism" if any(i.module == EXTISM_MODULE for i in module.imports) else "wasi"
    for item in module.imports:
        qualified = f"{item.module}.{item.name}"
        names.append(qualified)
        ty = item.type
        if abi == "extism":
            allowed = item.module == EXTISM_MODULE and item.name in EXTISM_KERNEL
            hint = (
                "An Extism-ABI module may import only the Extism kernel "
                f"(`{EXTISM_MODULE}`: input, output, memory, config, vars, logs); no "
                "host functions, HTTP or WASI. Build for wasm32-unknown-unknown."
            )
        else:
            allowed = (
                item.module == wasi.WASI_MODULE
                and item.name in wasi.FUNCTIONS
                and isinstance(ty, wasmtime.FuncType)
                and _signature(ty) == wasi.signature(item.name)
            )
            hint = (
                "Functions run without files, network, environment or clocks; they may "
                "import only these WASI preview1 functions: "
                f"{', '.join(sorted(wasi.FUNCTIONS))}. Remove the code that needs it."
            )
        if not allowed:
            raise InvalidModuleError(
                f"The module imports `{qualified}`, which Cartwheel does not provide. {hint}",
                code="FORBIDDEN_IMPORT",
                import_name=qualified,
            )
    return abi, tuple(names)


def _signature(ty: wasmtime.FuncType) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return tuple(str(p) for p in ty.params), tuple(str(r) for r in ty.results)


def _compile(
    engine: RunnerEngine, wasm: bytes, sha256: str, cache: ModuleCache | None
) -> wasmtime.Module:
    if cache is not None:
        return cache.load(engine, wasm, sha256)
    return wasmtime.Module(engine.engine, wasm)


@dataclass
class CacheStats:
    """Counters of a `ModuleCache` since it was created."""

    memory_hits: int = 0
    disk_hits: int = 0
    compiles: int = 0
    rejected: int = 0


_ARTIFACT_MAGIC: Final = b"CWMOD\x01\n\0"
_MAC_BYTES: Final = 32
_KEY_FILE: Final = ".cartwheel-cache-key"


class ModuleCache:
    """Precompiled wasmtime artifacts, on disk and in memory.

    `directory` (created if missing) may be shared by many processes: files are written
    to a temporary name and renamed into place, so readers see whole files or none.
    Artifacts are keyed by the module's sha256, the engine fingerprint (configuration)
    and the wasmtime version, and carry an HMAC-SHA256 over key and bytes. `secret`
    keys the HMAC; without one, a random key is created once in the directory (mode
    0600), which guards against corruption and foreign files but not against someone
    who can read the directory: a server should pass its own secret. `directory=None`
    keeps the in-memory LRU only, bounded by `max_memory_bytes` of artifact size.
    """

    def __init__(
        self,
        directory: str | os.PathLike[str] | None,
        *,
        max_memory_bytes: int = DEFAULT_MEMORY_CACHE_BYTES,
        secret: bytes | None = None,
    ) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.max_memory_bytes = max_memory_bytes
        self.stats = CacheStats()
        self._lru: OrderedDict[str, tuple[wasmtime.Module, int]] = OrderedDict()
        self._lru_bytes = 0
        self._lock = threading.Lock()
        self._secret = secret
        if self.directory is not None:
            try:
                self.directory.mkdir(parents=True, exist_ok=True)
                if self._secret is None:
                    self._secret = self._directory_secret(self.directory)
            except OSError as exc:
                raise ModuleCacheError(
                    f"Cannot use {self.directory} as the module cache: {exc}. Point the "
                    "cache at a writable directory.",
                ) from exc

    @property
    def memory_bytes(self) -> int:
        """Artifact bytes currently held in the in-process LRU."""
        return self._lru_bytes

    def key(self, engine: RunnerEngine, sha256: str) -> str:
        """Cache key of module `sha256` compiled for `engine`."""
        return hashlib.sha256(f"{sha256}:{engine.fingerprint}".encode()).hexdigest()

    def path(self, engine: RunnerEngine, sha256: str) -> Path | None:
        """Where the artifact of `sha256` for `engine` lives on disk (None: no directory)."""
        if self.directory is None:
            return None
        return self.directory / f"{self.key(engine, sha256)}.cwasm"

    def load(self, engine: RunnerEngine, wasm: bytes, sha256: str) -> wasmtime.Module:
        """The compiled module: from memory, else a verified disk artifact, else compile
        (and store). Raises `wasmtime.WasmtimeError` if `wasm` does not compile."""
        key = self.key(engine, sha256)
        with self._lock:
            hit = self._lru.get(key)
            if hit is not None:
                self._lru.move_to_end(key)
                self.stats.memory_hits += 1
                return hit[0]
        module, size = self._from_disk(engine, key)
        if module is None:
            module = wasmtime.Module(engine.engine, wasm)
            artifact = bytes(module.serialize())
            size = len(artifact)
            self.stats.compiles += 1
            self._to_disk(key, artifact)
        else:
            self.stats.disk_hits += 1
        self._remember(key, module, size)
        return module

    def _remember(self, key: str, module: wasmtime.Module, size: int) -> None:
        with self._lock:
            if key in self._lru:
                return
            self._lru[key] = (module, size)
            self._lru_bytes += size
            while self._lru_bytes > self.max_memory_bytes and len(self._lru) > 1:
                _, (_, evicted) = self._lru.popitem(last=False)
                self._lru_bytes -= evicted

    def _mac(self, key: str, artifact: bytes) -> bytes:
        assert self._secret is not None
        mac = hmac.new(self._secret, key.encode(), hashlib.sha256)
        mac.update(artifact)
        return mac.digest()

    def _from_disk(self, engine: RunnerEngine, key: str) -> tuple[wasmtime.Module | None, int]:
        if self.directory is None:
            return None, 0
        path = self.directory / f"{key}.cwasm"
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            return None, 0
        except OSError:
            self.stats.rejected += 1
            return None, 0
        header = len(_ARTIFACT_MAGIC)
        artifact = blob[header + _MAC_BYTES :]
        valid = blob.startswith(_ARTIFACT_MAGIC) and hmac.compare_digest(
            blob[header : header + _MAC_BYTES], self._mac(key, artifact)
        )
        if not valid:
            self.stats.rejected += 1
            return None, 0
        try:
            return wasmtime.Module.deserialize(engine.engine, artifact), len(artifact)
        except wasmtime.WasmtimeError:
            self.stats.rejected += 1
            return None, 0

    def _to_disk(self, key: str, artifact: bytes) -> None:
        if self.directory is None:
            return
        final = self.directory / f"{key}.cwasm"
        tmp = self.directory / f".{key}.{os.getpid()}.{threading.get_ident()}.tmp"
        try:
            with open(tmp, "wb") as fh:
                fh.write(_ARTIFACT_MAGIC)
                fh.write(self._mac(key, artifact))
                fh.write(artifact)
            os.replace(tmp, final)
        except OSError:
            # A read-only or full disk only costs a recompile later; never fail the load.
            tmp.unlink(missing_ok=True)

    @staticmethod
    def _directory_secret(directory: Path) -> bytes:
        path = directory / _KEY_FILE
        if not path.exists():
            tmp = directory / f".{_KEY_FILE}.{os.getpid()}.{threading.get_ident()}.tmp"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, secrets.token_bytes(32))
            finally:
                os.close(fd)
            try:
                os.link(tmp, path)  # atomic; loses to a concurrent creator, which is fine
            except FileExistsError:
                pass
            finally:
                tmp.unlink(missing_ok=True)
        secret = path.read_bytes()
        if len(secret) != 32:
            raise ModuleCacheError(
                f"The cache key file {path} is damaged; delete it together with the "
                "cached *.cwasm files.",
            )
        return secret
