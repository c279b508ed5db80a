"""The cart snapshot fixtures: reproducible from their generator and true to the format."""

from __future__ import annotations

import importlib.util
import types
import typing
from pathlib import Path
from typing import Any, Literal, NotRequired, get_args, get_origin, get_type_hints

import orjson
import pytest

from functions_sdk import snapshot as fmt

ROOT = Path(__file__).resolve().parents[2]
CARTS = ROOT / "examples/carts"


def _generator() -> Any:
    spec = importlib.util.spec_from_file_location("cart_fixture_generator", CARTS / "generate.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _conforms(value: Any, hint: Any, path: str) -> list[str]:
    """Structural check of a JSON value against a snapshot TypedDict annotation."""
    origin = get_origin(hint)
    if hint is Any:
        return []
    if origin in (typing.Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return []
        errors = [_conforms(value, o, path) for o in options if o is not type(None)]
        return [] if any(not e for e in errors) else errors[0]
    if origin is Literal:
        return [] if value in get_args(hint) else [f"{path}: {value!r} not in {get_args(hint)}"]
    if origin is list:
        if not isinstance(value, list):
            return [f"{path}: expected a list"]
        return [
            e for i, v in enumerate(value) for e in _conforms(v, get_args(hint)[0], f"{path}[{i}]")
        ]
    if isinstance(hint, type) and typing.is_typeddict(hint):
        if not isinstance(value, dict):
            return [f"{path}: expected an object"]
        hints = get_type_hints(hint, include_extras=True)
        errors = [f"{path}: unexpected key {k!r}" for k in value if k not in hints]
        for key, sub in hints.items():
            optional = get_origin(sub) is NotRequired
            if optional:
                sub = get_args(sub)[0]
            if key not in value:
                if not optional:
                    errors.append(f"{path}: missing {key!r}")
                continue
            errors += _conforms(value[key], sub, f"{path}.{key}")
        return errors
    if hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
        return [] if ok else [f"{path}: expected int"]
    return [] if isinstance(value, hint) else [f"{path}: expected {hint.__name__}"]


@pytest.mark.parametrize(
    ("name", "lines", "seed", "groups"), [("small", 3, 7, 1), ("large", 200, 2026, 2)]
)
def test_fixture_is_what_the_generator_writes(
    name: str, lines: int, seed: int, groups: int
) -> None:
    built = _generator().build(lines, seed, groups=groups)
    expected = orjson.dumps(built, option=orjson.OPT_INDENT_2) + b"\n"
    assert (CARTS / f"{name}.json").read_bytes() == expected
    assert len(built["cart"]["lines"]) == lines


@pytest.mark.parametrize("name", ["small", "large"])
def test_fixture_follows_the_snapshot_format(name: str) -> None:
    data = orjson.loads((CARTS / f"{name}.json").read_bytes())
    assert data["version"] == fmt.SNAPSHOT_VERSION
    assert _conforms(data, fmt.Snapshot, "$") == []


def test_large_fixture_is_realistic() -> None:
    cart = orjson.loads((CARTS / "large.json").read_bytes())
    lines = cart["cart"]["lines"]
    products = {
        line["merchandise"]["product"]["id"]: line["merchandise"]["product"] for line in lines
    }
    assert len(products) >= 20
    assert len({c for p in products.values() for c in p["collectionIds"]}) == 8
    assert any(p["metafields"] for p in products.values())
    assert any(line["cost"]["compareAtAmountPerQuantity"] for line in lines)
    assert any(line["attributes"] for line in lines)
    # A product has the same facts on every line that buys it.
    for line in lines:
        assert line["merchandise"]["product"] == products[line["merchandise"]["product"]["id"]]
    assert cart["cart"]["buyerIdentity"]["customer"]["tags"]
    assert len(cart["cart"]["deliveryGroups"]) == 2
    assert len(cart["paymentMethods"]) == 4


def test_checker_catches_a_malformed_snapshot() -> None:
    data = orjson.loads((CARTS / "small.json").read_bytes())
    data["cart"]["lines"][0]["quantity"] = "2"
    del data["shop"]["localTime"]
    data["cart"]["deliveryGroups"][0]["deliveryOptions"][0]["deliveryMethodType"] = "TELEPORT"
    assert _conforms(data, fmt.Snapshot, "$") == [
        "$.shop: missing 'localTime'",
        "$.cart.lines[0].quantity: expected int",
        "$.cart.deliveryGroups[0].deliveryOptions[0].deliveryMethodType: 'TELEPORT' not in "
        "('SHIPPING', 'LOCAL', 'PICK_UP', 'NONE', 'RETAIL', 'PICKUP_POINT')",
    ]
