"""Resource limits for one function run.

Defaults are Shopify's published Function limits (1 kB = 1000 bytes), so a function
that fits here fits there. Every limit is configurable per target and per run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

DEFAULT_INSTRUCTIONS_LIMIT = 11_000_000
"""Fuel (≈ one unit per executed wasm instruction) granted to a run."""

DEFAULT_INPUT_BYTES_LIMIT = 128_000
"""Largest input JSON written to the function's stdin."""

DEFAULT_OUTPUT_BYTES_LIMIT = 20_000
"""Largest output JSON accepted from the function's stdout."""

DEFAULT_MODULE_BYTES_LIMIT = 256_000
"""Largest WebAssembly module accepted at deploy or load time."""

DEFAULT_LINEAR_MEMORY_BYTES_LIMIT = 10_000_000
"""Largest linear memory a module may grow to."""

DEFAULT_STACK_BYTES_LIMIT = 512_000
"""Largest wasm stack (wasmtime `max_wasm_stack`)."""

DEFAULT_LOG_BYTES_LIMIT = 1_000
"""Logs (stderr) kept per run; the rest is cut and a marker appended."""

DEFAULT_TIMEOUT_MS = 1_000
"""Wall-time deadline of one run, enforced by epoch interruption.

Shopify publishes no wall-clock limit. 11 M instructions take well under 100 ms here;
the deadline is a backstop for host-side stalls, not the primary limit.
See docs/PERFORMANCE.md for the measurement behind this value.
"""

SCALE_FACTOR_MIN = 1.0
SCALE_FACTOR_MAX = 10.0
SCALE_LINES_THRESHOLD = 200
"""Above this many cart lines, instruction/input/output limits scale proportionally."""


@dataclass(frozen=True, slots=True)
class Limits:
    """The limits applied to one run. Immutable; derive variants with `scaled()` or
    `dataclasses.replace()`."""

    instructions: int = DEFAULT_INSTRUCTIONS_LIMIT
    input_bytes: int = DEFAULT_INPUT_BYTES_LIMIT
    output_bytes: int = DEFAULT_OUTPUT_BYTES_LIMIT
    module_bytes: int = DEFAULT_MODULE_BYTES_LIMIT
    linear_memory_bytes: int = DEFAULT_LINEAR_MEMORY_BYTES_LIMIT
    stack_bytes: int = DEFAULT_STACK_BYTES_LIMIT
    log_bytes: int = DEFAULT_LOG_BYTES_LIMIT
    timeout_ms: int = DEFAULT_TIMEOUT_MS

    def scaled(self, factor: float) -> Limits:
        """Multiply the instruction, input and output limits by `factor`, clamped to
        [1, 10] as Shopify does."""
        f = min(max(factor, SCALE_FACTOR_MIN), SCALE_FACTOR_MAX)
        if f == 1.0:
            return self  # every cart up to 200 lines: no copy on the checkout's hot path
        return dataclasses.replace(
            self,
            instructions=int(self.instructions * f),
            input_bytes=int(self.input_bytes * f),
            output_bytes=int(self.output_bytes * f),
        )

    def to_dict(self) -> dict[str, int]:
        return dataclasses.asdict(self)


def scale_factor_for_lines(line_count: int) -> float:
    """Shopify's scale factor: proportional to cart lines above 200, clamped to 1–10."""
    if line_count <= SCALE_LINES_THRESHOLD:
        return 1.0
    return min(line_count / SCALE_LINES_THRESHOLD, SCALE_FACTOR_MAX)
