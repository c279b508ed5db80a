"""The sandbox runner: run untrusted WebAssembly functions under strict limits.

    module = load_module(wasm_bytes, cache=ModuleCache("/var/cache/cartwheel"))
    result = run(module, input_json, Limits())
    if result.ok: ...

See docs/RUNNER.md for the limits, the deterministic WASI and the two ABIs.
"""

from functions_sdk.runner.errors import InvalidLimitsError, InvalidModuleError, ModuleCacheError
from functions_sdk.runner.module import CacheStats, CompiledModule, ModuleCache, load_module
from functions_sdk.runner.result import ErrorCode, RunResult, RunStatus
from functions_sdk.runner.sandbox import run

__all__ = [
    "CacheStats",
    "CompiledModule",
    "ErrorCode",
    "InvalidLimitsError",
    "InvalidModuleError",
    "ModuleCache",
    "ModuleCacheError",
    "RunResult",
    "RunStatus",
    "load_module",
    "run",
]
