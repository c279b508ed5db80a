"""The outcome of one function run: `RunResult`, its `RunStatus` and `ErrorCode`.

A failing guest is data, never an exception: the server logs a `RunResult`, the CLI
prints it, and `to_dict()` / `from_dict()` carry it through JSON (run logs, `--json`).
"""

from __future__ import annotations

import base64
import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from functions_sdk.limits import Limits


class RunStatus(StrEnum):
    """Whether the function produced a usable (JSON) output."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"


class ErrorCode(StrEnum):
    """Why a run failed. Stable: stored in run logs and shown to developers."""

    INSTRUCTION_LIMIT_EXCEEDED = "INSTRUCTION_LIMIT_EXCEEDED"
    TIMEOUT = "TIMEOUT"
    LINEAR_MEMORY_LIMIT_EXCEEDED = "LINEAR_MEMORY_LIMIT_EXCEEDED"
    STACK_LIMIT_EXCEEDED = "STACK_LIMIT_EXCEEDED"
    INPUT_TOO_LARGE = "INPUT_TOO_LARGE"
    OUTPUT_TOO_LARGE = "OUTPUT_TOO_LARGE"
    INVALID_OUTPUT = "INVALID_OUTPUT"
    NONZERO_EXIT = "NONZERO_EXIT"
    RUNTIME_ERROR = "RUNTIME_ERROR"
    INVALID_MODULE = "INVALID_MODULE"


@dataclass(frozen=True, slots=True)
class RunResult:
    """Everything known about one run.

    `fuel_consumed` is exact when `fuel_exact` is true. It is `None` when the engine
    cannot report it: after a wall-time interrupt (TIMEOUT) and for every Extism-ABI run
    (Extism enforces a fuel limit but does not report consumption). `peak_memory_bytes`
    is the guest's linear memory at the end of the run (wasm memory never shrinks, so
    this is its peak), `None` where unknown (Extism, or no instance was created).
    `output_bytes` counts what the guest wrote, even past the limit (it was stopped
    early, so it is at most one write over). `logs_bytes` likewise counts every byte
    written to stderr, of which only `limits.log_bytes` are kept in `logs`.
    """

    status: RunStatus
    error_code: ErrorCode | None
    message: str
    output: bytes
    logs: str
    logs_truncated: bool
    logs_bytes: int
    fuel_consumed: int | None
    fuel_exact: bool
    peak_memory_bytes: int | None
    duration_ms: float
    input_bytes: int
    output_bytes: int
    module_bytes: int
    limits: Limits
    abi: str
    export: str
    module_sha256: str

    @property
    def ok(self) -> bool:
        """True when the run succeeded."""
        return self.status is RunStatus.SUCCEEDED

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict. `output` is text when it is UTF-8, else `output_base64`."""
        data: dict[str, Any] = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["status"] = self.status.value
        data["error_code"] = self.error_code.value if self.error_code is not None else None
        data["limits"] = self.limits.to_dict()
        try:
            data["output"] = self.output.decode("utf-8")
        except UnicodeDecodeError:
            data["output"] = None
            data["output_base64"] = base64.b64encode(self.output).decode("ascii")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunResult:
        """Inverse of `to_dict()`. Raises `KeyError` / `ValueError` on a malformed dict."""
        if data.get("output") is None and "output_base64" in data:
            output = base64.b64decode(data["output_base64"])
        else:
            output = str(data["output"]).encode("utf-8")
        code = data["error_code"]
        fuel = data["fuel_consumed"]
        memory = data["peak_memory_bytes"]
        return cls(
            status=RunStatus(data["status"]),
            error_code=ErrorCode(code) if code is not None else None,
            message=str(data["message"]),
            output=output,
            logs=str(data["logs"]),
            logs_truncated=bool(data["logs_truncated"]),
            logs_bytes=int(data["logs_bytes"]),
            fuel_consumed=int(fuel) if fuel is not None else None,
            fuel_exact=bool(data["fuel_exact"]),
            peak_memory_bytes=int(memory) if memory is not None else None,
            duration_ms=float(data["duration_ms"]),
            input_bytes=int(data["input_bytes"]),
            output_bytes=int(data["output_bytes"]),
            module_bytes=int(data["module_bytes"]),
            limits=Limits(**{k: int(v) for k, v in dict(data["limits"]).items()}),
            abi=str(data["abi"]),
            export=str(data["export"]),
            module_sha256=str(data["module_sha256"]),
        )
