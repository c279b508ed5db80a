"""`cartwheel fn run`: run a function locally, exactly as checkout would.

    cartwheel fn run --wasm build/fn.wasm --input input.json
    cartwheel fn run --wasm build/fn.wasm --cart cart.json --query input.graphql \\
        --target cart.lines.discounts.generate.run

Prints, like Shopify's function-runner, the input, the logs, the output and a table of
each measured resource against its limit (over-limit values flagged), or with `--json`
one JSON document: `RunResult.to_dict()` plus the `input`.

Exit codes: 0 the function succeeded; 1 it failed (its run ended with an error code, or
its output does not fit the target's output schema); 3 the module, input, cart, query or
variables are invalid.
"""

from __future__ import annotations

import dataclasses
import re
import sys
from pathlib import Path
from typing import Any

import click
import orjson
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from functions_sdk.cli import EXIT_FUNCTION_FAILED, EXIT_INVALID_INPUT, EXIT_OK, fn
from functions_sdk.errors import CartwheelError
from functions_sdk.limits import Limits
from functions_sdk.runner import (
    CompiledModule,
    ErrorCode,
    InvalidLimitsError,
    InvalidModuleError,
    RunResult,
    RunStatus,
    load_module,
    run,
)
from functions_sdk.runner.engine import check_limits

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(b|kb|mb|kib|mib)?\s*$", re.IGNORECASE)
_UNITS = {"b": 1, "kb": 1000, "mb": 1_000_000, "kib": 1024, "mib": 1024 * 1024}


class ByteSize(click.ParamType[int]):
    """A byte count: `10000000`, `10000kB`, `10MB`, `512KiB` (1 kB = 1000 bytes)."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        match = _SIZE.match(str(value))
        if match is None:
            self.fail(f"{value!r} is not a size such as 10000000, 10000kB or 10MB", param, ctx)
        number, unit = match.groups()
        return int(float(number) * _UNITS[(unit or "b").lower()])


class InvalidRunInputError(CartwheelError):
    """The input given to `fn run` cannot be used (not JSON, unreadable)."""

    code = "INVALID_INPUT"


def _limits(
    base: Limits,
    *,
    instructions: int | None,
    memory: int | None,
    stack: int | None,
    max_input: int | None,
    max_output: int | None,
    max_logs: int | None,
    max_module: int | None,
    timeout_ms: int | None,
    scale: float | None,
) -> Limits:
    overrides = {
        "instructions": instructions,
        "linear_memory_bytes": memory,
        "stack_bytes": stack,
        "input_bytes": max_input,
        "output_bytes": max_output,
        "log_bytes": max_logs,
        "module_bytes": max_module,
        "timeout_ms": timeout_ms,
    }
    limits = dataclasses.replace(base, **{k: v for k, v in overrides.items() if v is not None})
    return limits.scaled(scale) if scale is not None else limits


def _read_json_file(path: str, what: str) -> bytes:
    try:
        data = sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise InvalidRunInputError(f"Cannot read the {what} {path}: {exc.strerror}.") from exc
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise InvalidRunInputError(
            f"The {what} {path} is not valid JSON ({exc}). Pass a JSON document."
        ) from exc
    return data


def _input_from_query(
    cart: str, query: str, target: str, variables: str | None, owner: str | None
) -> tuple[bytes, Limits]:
    from functions_sdk.apis import get_target
    from functions_sdk.limits import scale_factor_for_lines
    from functions_sdk.query import compile_query

    spec = get_target(target)
    try:
        text = Path(query).read_text()
    except OSError as exc:
        raise InvalidRunInputError(f"Cannot read the query {query}: {exc.strerror}.") from exc
    compiled = compile_query(spec, text)
    snapshot = orjson.loads(_read_json_file(cart, "cart"))
    values = None
    if variables is not None:
        values = compiled.variables_from_metafield(_read_json_file(variables, "variables").decode())
    owner_value = orjson.loads(_read_json_file(owner, "owner")) if owner is not None else None
    payload = compiled.execute(snapshot, owner=owner_value, variables=values)
    lines = len(snapshot.get("cart", {}).get("lines", []))
    return payload, spec.limits.scaled(scale_factor_for_lines(lines))


def _validate(target: str, result: RunResult, payload: bytes) -> tuple[RunResult, list[Any]]:
    from functions_sdk.output import InvalidOutputError, validate_output

    try:
        validate_output(target, result.output, input=payload)
    except InvalidOutputError as exc:
        errors = list(exc.errors)
        first = "; ".join(f"{e['path']}: {e['message']}" for e in errors[:3])
        invalid = dataclasses.replace(
            result,
            status=RunStatus.FAILED,
            error_code=ErrorCode.INVALID_OUTPUT,
            message=f"The output does not fit the {target} output schema: {first}",
        )
        return invalid, errors
    return result, []


@fn.command("run")
@click.option(
    "--wasm",
    "wasm_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The compiled function (.wasm).",
)
@click.option(
    "--input", "-i", "input_path", metavar="FILE|-", help="Input JSON file, or - for stdin."
)
@click.option(
    "--cart", metavar="FILE", help="A cart snapshot JSON file: build the input with --query."
)
@click.option(
    "--query", "query_path", metavar="FILE", help="The input query (.graphql) run against --cart."
)
@click.option("--target", "-t", metavar="TARGET", help="The Function API target of --query.")
@click.option(
    "--variables", metavar="FILE", help="JSON file: the input query variables metafield value."
)
@click.option(
    "--owner", metavar="FILE", help="JSON file: the function owner (its metafields) for --query."
)
@click.option(
    "--export",
    "-e",
    metavar="NAME",
    help="Export to call (default _start for WASI, run for Extism).",
)
@click.option("--instructions", type=int, help="Instruction (fuel) limit.")
@click.option("--memory", type=ByteSize(), help="Linear memory limit, e.g. 10000kB.")
@click.option("--stack", type=ByteSize(), help="Wasm stack limit, e.g. 512kB (at most 2MiB).")
@click.option("--max-input", type=ByteSize(), help="Input size limit.")
@click.option("--max-output", type=ByteSize(), help="Output size limit.")
@click.option("--max-logs", type=ByteSize(), help="Log size limit (logs past it are cut).")
@click.option("--max-module", type=ByteSize(), help="Module size limit.")
@click.option("--timeout-ms", type=int, help="Wall-time deadline in milliseconds.")
@click.option("--scale", type=float, help="Scale instruction/input/output limits (1-10).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document.")
def run_command(
    wasm_path: Path,
    input_path: str | None,
    cart: str | None,
    query_path: str | None,
    target: str | None,
    variables: str | None,
    owner: str | None,
    export: str | None,
    instructions: int | None,
    memory: int | None,
    stack: int | None,
    max_input: int | None,
    max_output: int | None,
    max_logs: int | None,
    max_module: int | None,
    timeout_ms: int | None,
    scale: float | None,
    as_json: bool,
) -> None:
    """Run a function on an input (or on a cart through its input query) and report.

    Exit codes: 0 succeeded; 1 the function failed; 3 invalid module, input, cart,
    query or variables.
    """
    query_mode = cart is not None or query_path is not None or target is not None
    if query_mode and not (cart and query_path and target):
        raise click.UsageError("--cart, --query and --target go together.")
    if query_mode == (input_path is not None):
        raise click.UsageError("Pass either --input, or --cart with --query and --target.")
    try:
        if query_mode:
            assert cart is not None
            assert query_path is not None
            assert target is not None
            payload, base = _input_from_query(cart, query_path, target, variables, owner)
        else:
            assert input_path is not None
            payload, base = _read_json_file(input_path, "input"), Limits()
    except CartwheelError as exc:
        _fail(exc, as_json)
    limits = _limits(
        base,
        instructions=instructions,
        memory=memory,
        stack=stack,
        max_input=max_input,
        max_output=max_output,
        max_logs=max_logs,
        max_module=max_module,
        timeout_ms=timeout_ms,
        scale=scale,
    )
    try:
        check_limits(limits)
    except InvalidLimitsError as exc:
        raise click.UsageError(exc.message) from exc
    wasm = wasm_path.read_bytes()
    try:
        # Load first so that the reported wall time is the run's, not the compiler's.
        module: CompiledModule | bytes = load_module(wasm, limits=limits, export=export)
    except InvalidModuleError:
        module = wasm  # run() reports it as an INVALID_MODULE result
    result = run(module, payload, limits, export=export)
    output_errors: list[Any] = []
    if query_mode and result.ok:
        assert target is not None
        result, output_errors = _validate(target, result, payload)
    if as_json:
        document = {
            "ok": result.ok,
            **result.to_dict(),
            "input": payload.decode("utf-8", "replace"),
        }
        if output_errors:
            document["output_errors"] = output_errors
        sys.stdout.write(orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        _report(Console(highlight=False, soft_wrap=True), result, payload)
    if result.ok:
        raise SystemExit(EXIT_OK)
    if result.error_code is ErrorCode.INVALID_MODULE:
        raise SystemExit(EXIT_INVALID_INPUT)
    raise SystemExit(EXIT_FUNCTION_FAILED)


def _fail(error: CartwheelError, as_json: bool) -> Any:
    if as_json:
        sys.stdout.write(orjson.dumps({"ok": False, "error": error.to_dict()}).decode() + "\n")
    else:
        Console(stderr=True, highlight=False).print(
            f"[bold red]error[/] [red]{error.code}[/]: {escape(error.message)}"
        )
    raise SystemExit(EXIT_INVALID_INPUT)


def _pretty(data: bytes) -> str:
    try:
        return orjson.dumps(orjson.loads(data), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        return data.decode("utf-8", "replace")


def _kb(n: int | None) -> str:
    return "unknown" if n is None else f"{n / 1000:,.1f} kB"


def _report(console: Console, result: RunResult, payload: bytes) -> None:
    limits = result.limits
    console.rule("[bold]Input")
    console.print(escape(_pretty(payload)))
    console.rule("[bold]Logs")
    console.print(escape(result.logs) if result.logs else "[dim](none)[/]")
    if result.logs_truncated:
        console.print(
            f"[yellow]Logs truncated: {result.logs_bytes:,} bytes written > "
            f"{limits.log_bytes:,}-byte limit.[/]"
        )
    console.rule("[bold]Output")
    console.print(escape(_pretty(result.output)) if result.output else "[dim](none)[/]")

    table = Table(title="Resource usage", title_justify="left")
    table.add_column("Resource")
    table.add_column("Used", justify="right")
    table.add_column("Limit", justify="right")
    table.add_column("")
    fuel = "unknown" if result.fuel_consumed is None else f"{result.fuel_consumed:,}"
    if result.fuel_consumed is not None and not result.fuel_exact:
        fuel += " (approx.)"
    rows = [
        (
            "Instructions",
            fuel,
            f"{limits.instructions:,}",
            result.error_code is ErrorCode.INSTRUCTION_LIMIT_EXCEEDED,
        ),
        (
            "Linear memory",
            _kb(result.peak_memory_bytes),
            _kb(limits.linear_memory_bytes),
            result.error_code is ErrorCode.LINEAR_MEMORY_LIMIT_EXCEEDED,
        ),
        (
            "Input size",
            _kb(result.input_bytes),
            _kb(limits.input_bytes),
            result.input_bytes > limits.input_bytes,
        ),
        (
            "Output size",
            _kb(result.output_bytes),
            _kb(limits.output_bytes),
            result.output_bytes > limits.output_bytes,
        ),
        (
            "Module size",
            _kb(result.module_bytes),
            _kb(limits.module_bytes),
            result.module_bytes > limits.module_bytes,
        ),
        ("Logs", _kb(result.logs_bytes), _kb(limits.log_bytes), result.logs_truncated),
        (
            "Wall time",
            f"{result.duration_ms:,.2f} ms",
            f"{limits.timeout_ms:,} ms",
            result.error_code is ErrorCode.TIMEOUT,
        ),
    ]
    for name, used, limit, over in rows:
        table.add_row(
            name,
            f"[red]{used}[/]" if over else used,
            limit,
            "[bold red]over limit[/]" if over else "",
        )
    console.print(table)
    if result.ok:
        console.print(f"[bold green]✓ succeeded[/] ({result.abi}, export {result.export})")
    else:
        code = result.error_code.value if result.error_code else "FAILED"
        console.print(f"[bold red]✗ {code}[/]: {escape(result.message)}")
