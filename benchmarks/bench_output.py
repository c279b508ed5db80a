"""Output validation: `validate_output` vs graphql-core and jsonschema on 200 operations.

Each scenario is one output of 200 operations on the 200-line cart fixture
(examples/carts/large.json), validated as checkout does: from the stdout bytes, with
the references checked against the snapshot. Every contender parses the same bytes
with orjson first. Baselines, measured in the same run:

- graphql-core `coerce_input_value` on the *same* bound output type: it builds the same
  typed operations (dataclasses, Decimals) but checks no value rule and no reference;
- graphql-core `coerce_input_value` on a *plain* schema built from the printed SDL (no
  bindings: dicts out, Decimal unchecked);
- jsonschema (Draft 2020-12) with the output JSON Schema from `functions_sdk.typegen`
  (types, @oneOf, ranges; no references, no typed result).

Also timed: rejecting the same output with one bad value in its last operation
(fast path fails, then the diagnosis walks the whole document for every error).
Rounds are interleaved across contenders so that load from other processes on a shared
machine hits all of them alike.

    .venv/bin/python benchmarks/bench_output.py [--quick]
"""

from __future__ import annotations

import argparse
import gc
import platform
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import Any

import graphql
import jsonschema
import orjson
from graphql import GraphQLNonNull, build_schema
from graphql.pyutils import Undefined
from graphql.utilities import coerce_input_value

from functions_sdk.apis import outputs as o
from functions_sdk.output import InvalidOutputError, References, validate_output
from functions_sdk.typegen import json_schema, output_model

ROOT = Path(__file__).resolve().parent.parent
OPERATIONS = 200


def _best_times(contenders: dict[str, Callable[[], object]], budget_s: float) -> dict[str, float]:
    """Best mean CPU seconds per call of each contender over 7 rounds.

    The rounds are interleaved (every contender runs once per round, about
    `budget_s / 7` long each), so that load from other processes on this shared machine
    hits all of them alike and the ratios stay meaningful; CPU time of this process
    (`time.process_time`), not wall time."""
    numbers = {}
    for name, fn in contenders.items():
        fn()
        start = time.process_time()
        fn()
        once = max(time.process_time() - start, 1e-6)
        numbers[name] = max(1, int(budget_s / 7 / once))
    best = dict.fromkeys(contenders, float("inf"))
    gc.collect()
    for _ in range(7):
        for name, fn in contenders.items():
            start = time.process_time()
            for _ in range(numbers[name]):
                fn()
            best[name] = min(best[name], (time.process_time() - start) / numbers[name])
    return best


def _scenarios(snapshot: dict[str, Any]) -> dict[str, tuple[str, dict[str, Any], list[str]]]:
    """name -> (target, output, path to the value spoiled in the invalid variant)."""
    lines = [line["id"] for line in snapshot["cart"]["lines"]][:OPERATIONS]
    handles = [
        option["handle"]
        for group in snapshot["cart"]["deliveryGroups"]
        for option in group["deliveryOptions"]
    ]
    discounts = [
        {
            "productDiscountsAdd": {
                "candidates": [
                    {
                        "targets": [{"cartLine": {"id": line, "quantity": 1}}],
                        "value": {"percentage": {"value": "10.0"}},
                        "message": "10% off",
                    }
                ],
                "selectionStrategy": "FIRST",
            }
        }
        for line in lines
    ]
    delivery: list[dict[str, Any]] = []
    for i in range(OPERATIONS):
        handle = handles[i % len(handles)]
        delivery.append(
            [
                {"deliveryOptionHide": {"deliveryOptionHandle": handle}},
                {"deliveryOptionMove": {"deliveryOptionHandle": handle, "index": i % 4}},
                {"deliveryOptionRename": {"deliveryOptionHandle": handle, "title": f"Option {i}"}},
            ][i % 3]
        )
    transform = [
        {
            "lineUpdate": {
                "cartLineId": line,
                "title": "Gift-wrapped",
                "price": {"adjustment": {"fixedPricePerUnit": {"amount": 19.99}}},
            }
        }
        for line in lines
    ]
    last = OPERATIONS - 1
    return {
        "discounts (productDiscountsAdd)": (
            o.CART_LINES_DISCOUNTS,
            {"operations": discounts},
            [
                "operations",
                last,
                "productDiscountsAdd",
                "candidates",
                0,
                "value",
                "percentage",
                "value",
            ],
        ),
        "delivery customization": (
            o.CART_DELIVERY_OPTIONS_TRANSFORM,
            {"operations": delivery},
            ["operations", last - last % 3 + 1, "deliveryOptionMove", "index"],
        ),
        "cart transform (lineUpdate)": (
            o.CART_TRANSFORM,
            {"operations": transform},
            [
                "operations",
                last,
                "lineUpdate",
                "price",
                "adjustment",
                "fixedPricePerUnit",
                "amount",
            ],
        ),
    }


def _spoil(output: dict[str, Any], path: list[Any]) -> bytes:
    spoiled = orjson.loads(orjson.dumps(output))
    node = spoiled
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = -1 if path[-1] == "index" else "101"
    if path[-1] == "amount":
        node[path[-1]] = "-1"
    return orjson.dumps(spoiled)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="shorter timing rounds")
    args = parser.parse_args()
    budget = 0.35 if args.quick else 2.1
    print(
        f"Python {platform.python_version()}, graphql-core {graphql.__version__}, "
        f"jsonschema {version('jsonschema')}, orjson {orjson.__version__}; "
        f"{OPERATIONS} operations per output; CPU time per validation, best of 7 interleaved rounds"
    )
    snapshot = orjson.loads((ROOT / "examples/carts/large.json").read_bytes())
    refs = References.from_input(snapshot)
    for name, (target, output, bad_path) in _scenarios(snapshot).items():
        _bench(name, target, output, bad_path, refs, budget)


def _rejection(target: str, raw: bytes, refs: References) -> InvalidOutputError | None:
    try:
        validate_output(target, raw, input=refs)
    except InvalidOutputError as exc:
        return exc
    return None


def _bench(
    name: str,
    target: str,
    output: dict[str, Any],
    bad_path: list[Any],
    refs: References,
    budget: float,
) -> None:
    raw = orjson.dumps(output)
    bad = _spoil(output, bad_path)
    bound = GraphQLNonNull(o.output_type(target))
    plain_schema = build_schema(o.output_sdl(target))
    plain = GraphQLNonNull(plain_schema.type_map[o.output_type(target).name])
    validator = jsonschema.Draft202012Validator(json_schema(output_model(target), output=True))

    # Every contender accepts the output, and ours rejects the spoiled one.
    ours = validate_output(target, raw, input=refs)
    assert len(ours.operations) == OPERATIONS
    assert list(ours.operations) == coerce_input_value(orjson.loads(raw), bound)
    assert coerce_input_value(orjson.loads(raw), plain) is not Undefined
    validator.validate(orjson.loads(raw))
    rejection = _rejection(target, bad, refs)
    assert rejection is not None, f"{name}: the spoiled output was accepted"
    assert [e["code"] for e in rejection.errors] == ["OUT_OF_RANGE"], rejection.errors

    timings = _best_times(
        {
            "validate_output (ours)": lambda: validate_output(target, raw, input=refs),
            "graphql-core, same types": lambda: coerce_input_value(orjson.loads(raw), bound),
            "graphql-core, plain SDL": lambda: coerce_input_value(orjson.loads(raw), plain),
            "jsonschema 2020-12": lambda: validator.is_valid(orjson.loads(raw)),
            "rejecting (1 bad value)": lambda: _rejection(target, bad, refs),
        },
        budget,
    )
    base = timings["validate_output (ours)"]
    print(f"\n## {name}: {target}, {len(raw):,} bytes")
    print(f"{'contender':<26} {'time':>10} {'vs ours':>8}")
    for contender, seconds in timings.items():
        print(f"{contender:<26} {seconds * 1e3:>7.3f} ms {seconds / base:>7.1f}x")


if __name__ == "__main__":
    main()
