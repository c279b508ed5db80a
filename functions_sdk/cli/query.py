"""`cartwheel fn query`: run an input query against a cart snapshot, print the input.

This is the input JSON a function receives at checkout, computed locally by the same
compiled plan the server uses, so that developers never hand-write function input.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
import orjson

from functions_sdk.apis import get_target
from functions_sdk.cli import EXIT_INVALID_INPUT, fn
from functions_sdk.cli._project_common import emit_json, fail, json_option, target_option
from functions_sdk.errors import CartwheelError
from functions_sdk.query import compile_query
from functions_sdk.snapshot import SNAPSHOT_VERSION

_SNAPSHOT_KEYS = ("version", "shop", "localization", "presentmentCurrencyRate", "cart")


class InvalidCartError(CartwheelError):
    """A cart snapshot file that is not JSON or does not follow the snapshot format."""

    code = "INVALID_CART"


def _read_json(path: Path, what: str) -> Any:
    try:
        return orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as e:
        raise InvalidCartError(f"{what} {path} is not valid JSON: {e}.") from None


def load_snapshot_file(path: Path) -> dict[str, Any]:
    """Read a cart snapshot fixture and check its envelope (format version, top-level
    keys).

    Raises:
        InvalidCartError: not JSON, not an object, another format version, or a
            missing top-level key.
    """
    data = _read_json(path, "Cart snapshot")
    if not isinstance(data, dict):
        raise InvalidCartError(f"Cart snapshot {path} must be a JSON object.")
    if data.get("version") != SNAPSHOT_VERSION:
        raise InvalidCartError(
            f"Cart snapshot {path} has version {data.get('version')!r}; this SDK reads "
            f"version {SNAPSHOT_VERSION}. Regenerate it (see examples/carts/generate.py)."
        )
    missing = [k for k in _SNAPSHOT_KEYS if k not in data]
    if missing:
        raise InvalidCartError(
            f"Cart snapshot {path} lacks {', '.join(missing)}; see functions_sdk/snapshot.py "
            "or copy examples/carts/small.json."
        )
    return data


@fn.command("query")
@target_option("The Function API target the query is written for.")
@click.option(
    "--query",
    "-q",
    "query_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The input query file (GraphQL).",
)
@click.option(
    "--cart",
    "-c",
    "cart_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A cart snapshot (JSON, see examples/carts/).",
)
@click.option(
    "--variables",
    "-v",
    "variables",
    default=None,
    help="The variables metafield value (a JSON object keyed by variable name), as JSON "
    "text or the path of a JSON file (as `fn run --variables`).",
)
@click.option(
    "--owner",
    "owner_path",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The owner (discount / customization / validation) as JSON: "
    '{"id", "metafields": [...], "discountClasses": [...]}.',
)
@json_option
def query(
    target: str,
    query_path: Path,
    cart_path: Path,
    variables: str | None,
    owner_path: Path | None,
    as_json: bool,
) -> None:
    """Check the input query, execute it against the cart snapshot and print the input
    JSON the function would receive.

    With --json: {"ok", "target", "cost", "size", "bytes", "input"}.

    Exit codes: 0 printed; 3 invalid query, variables, cart or owner.
    """
    try:
        q = compile_query(get_target(target), query_path.read_text())
        snapshot = load_snapshot_file(cart_path)
        owner = _read_json(owner_path, "Owner") if owner_path is not None else None
        if variables is not None and Path(variables).is_file():
            variables = Path(variables).read_text()
        values = q.variables_from_metafield(variables)
        try:
            output = q.execute(snapshot, owner=owner, variables=values)
        except (KeyError, TypeError, AttributeError) as e:
            raise InvalidCartError(
                f"Cart snapshot {cart_path} does not follow the snapshot format "
                f"({type(e).__name__}: {e}); see functions_sdk/snapshot.py."
            ) from None
    except CartwheelError as exc:
        fail(exc, as_json=as_json, exit_code=EXIT_INVALID_INPUT)
    if as_json:
        emit_json(
            {
                "ok": True,
                "target": target,
                "cost": q.cost,
                "size": q.size,
                "bytes": len(output),
                "input": orjson.loads(output),
            }
        )
        return
    sys.stdout.write(orjson.dumps(orjson.loads(output), option=orjson.OPT_INDENT_2).decode())
    sys.stdout.write("\n")
