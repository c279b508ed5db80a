"""Cartwheel functions SDK: the Function API contract and the developer's tools.

    target = get_target("cart.lines.discounts.generate.run")
    query = compile_query(target, input_graphql)          # deploy-time checks
    module = load_module(wasm_bytes)                       # size, imports, entry
    result = run(module, query.execute(snapshot, owner=owner), target.limits)
    operations = validate_output(target.name, result.output).operations

Never imports the server (`cartwheel`); talks to it only over HTTP (`functions_sdk.client`).
"""

from functions_sdk.apis import TARGETS, Target, get_target
from functions_sdk.errors import CartwheelError
from functions_sdk.limits import Limits
from functions_sdk.output import InvalidOutputError, ValidatedOutput, validate_output
from functions_sdk.query import InputQuery, InvalidInputQueryError, compile_query
from functions_sdk.runner import (
    CompiledModule,
    ErrorCode,
    InvalidLimitsError,
    InvalidModuleError,
    ModuleCache,
    RunResult,
    RunStatus,
    load_module,
    run,
)

__all__ = [
    "TARGETS",
    "CartwheelError",
    "CompiledModule",
    "ErrorCode",
    "InputQuery",
    "InvalidInputQueryError",
    "InvalidLimitsError",
    "InvalidModuleError",
    "InvalidOutputError",
    "Limits",
    "ModuleCache",
    "RunResult",
    "RunStatus",
    "Target",
    "ValidatedOutput",
    "compile_query",
    "get_target",
    "load_module",
    "run",
    "validate_output",
]
