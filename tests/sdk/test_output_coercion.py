"""Differential tests: the compiled output coercion equals graphql-core's input coercion.

Hypothesis generates values shaped like each target's output type, valid and invalid
(wrong JSON types, nulls, unknown fields, @oneOf with zero or two fields, bad enums,
decimals and ids), and checks, for every value:

- graphql-core rejects it ⇔ the compiled coercer rejects it, except where only our value
  rules (ranges, formats) reject it;
- when both accept, they build the same typed operations;
- `validate_output` rejects exactly when the compiled coercer does, and then reports at
  least one error, each with a JSON path and a known code.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLNonNull,
    GraphQLScalarType,
    is_list_type,
    is_non_null_type,
)
from graphql.pyutils import Undefined
from graphql.utilities import coerce_input_value
from hypothesis import given, settings
from hypothesis import strategies as st

from functions_sdk.apis import outputs as o
from functions_sdk.output import (
    InvalidOutputError,
    OutputErrorCode,
    ValidatedOutput,
    compiled_coercer,
    is_invalid_signal,
    validate_output,
)

IDS = ["gid://cartwheel/CartLine/1", "gid://cartwheel/CartLine/2", "standard", "express"]
JUNK = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 3),
    st.floats(allow_nan=False, allow_infinity=False, width=32),
    st.text(max_size=4),
    st.lists(st.integers(0, 2), max_size=2),
    st.just({"x": 1}),
)
# Leaves that satisfy every rule (when the whole value is meant to be valid)...
VALID_LEAVES: dict[str, st.SearchStrategy[Any]] = {
    "String": st.sampled_from(["$.cart", "$.cart.lines[0].quantity", "Free shipping"]),
    "ID": st.sampled_from(IDS),
    "Handle": st.sampled_from(IDS),
    "Int": st.integers(1, 50),
    "Boolean": st.booleans(),
    "Decimal": st.one_of(
        st.integers(0, 100),
        st.decimals(0, 100, places=2, allow_nan=False).map(str),
        st.floats(0, 100, allow_nan=False),
    ),
    "URL": st.just("https://cdn.example.com/a.png"),
}
# ...and leaves that often do not.
LEAVES: dict[str, st.SearchStrategy[Any]] = {
    "String": st.text(max_size=6),
    "ID": st.sampled_from(IDS),
    "Handle": st.sampled_from(IDS),
    "Int": st.integers(-2, 2100),
    "Boolean": st.booleans(),
    "Decimal": st.one_of(
        st.integers(-5, 150),
        st.decimals(-5, 150, places=2, allow_nan=False).map(str),
        st.floats(-5, 150, allow_nan=False),
        st.sampled_from(["1e3", "12.", "abc", " 1", "-0", "99999999999999999"]),
    ),
    "URL": st.sampled_from(["https://cdn.example.com/a.png", "http://x", "ftp://x/y", "nope"]),
}


def _draw(data: st.DataObject, type_: GraphQLInputType, malformed: int = -1) -> Any:
    """A value shaped like `type_`: valid when `malformed` is 0, else each node is
    malformed with probability 1/`malformed` (drawn per example when -1)."""
    if malformed < 0:
        malformed = data.draw(st.sampled_from([0, 0, 8, 20]))
    broken = malformed > 0 and data.draw(st.integers(0, malformed - 1)) == 0
    if is_non_null_type(type_):
        return None if broken else _draw(data, type_.of_type, malformed)
    if broken:
        return data.draw(JUNK)
    if is_list_type(type_):
        if data.draw(st.integers(0, 9)) == 0:
            # A single value where a list is expected (GraphQL coerces it to a list).
            return _draw(data, type_.of_type, malformed)
        size = data.draw(st.integers(0, 3))
        return [_draw(data, type_.of_type, malformed) for _ in range(size)]
    if isinstance(type_, GraphQLInputObjectType):
        names = sorted(type_.fields)
        if type_.is_one_of:
            count = 1 if not broken_shape(data, malformed) else data.draw(st.sampled_from([0, 2]))
            chosen = (
                data.draw(
                    st.lists(st.sampled_from(names), min_size=count, max_size=count, unique=True)
                )
                if count <= len(names)
                else names
            )
        else:
            chosen = [
                n
                for n in names
                if is_non_null_type(type_.fields[n].type) or data.draw(st.booleans())
            ]
            if broken_shape(data, malformed) and chosen:
                chosen.remove(data.draw(st.sampled_from(chosen)))  # a missing field
        value = {name: _draw(data, type_.fields[name].type, malformed) for name in chosen}
        if broken_shape(data, malformed):
            value["extra"] = 1  # an unknown field
        return value
    if isinstance(type_, GraphQLEnumType):
        names = [*type_.values, "BOGUS"] if malformed else list(type_.values)
        return data.draw(st.sampled_from(names))
    assert isinstance(type_, GraphQLScalarType)
    return data.draw((LEAVES if malformed else VALID_LEAVES)[type_.name])


def broken_shape(data: st.DataObject, malformed: int) -> bool:
    return malformed > 0 and data.draw(st.integers(0, malformed - 1)) == 0


RULE_CODES = {OutputErrorCode.OUT_OF_RANGE, OutputErrorCode.INVALID_FORMAT}


def _compiled(target: str, value: Any) -> Any:
    try:
        return compiled_coercer(target)(value, {})
    except Exception as exc:
        if not is_invalid_signal(exc):
            raise
        return Undefined


# Half of the generated ids and handles exist in this input.
INPUT = {
    "cart": {
        "lines": [{"id": IDS[0]}],
        "deliveryGroups": [{"id": IDS[0], "deliveryOptions": [{"handle": "standard"}]}],
    },
    "paymentMethods": [{"id": IDS[1]}],
    "enteredDiscountCodes": [],
}


def _validated(target: str, value: Any, input: Any = None) -> ValidatedOutput | InvalidOutputError:
    try:
        return validate_output(target, orjson.dumps(value), input=input)
    except InvalidOutputError as exc:
        return exc


def _check(target: str, value: Any) -> None:
    expected = coerce_input_value(value, GraphQLNonNull(o.output_type(target)))
    ours = _compiled(target, value)
    result = _validated(target, value)
    if isinstance(result, InvalidOutputError):
        assert ours is Undefined
        assert result.errors
        assert all(e["path"].startswith("$") for e in result.errors)
        codes = {OutputErrorCode(e["code"]) for e in result.errors}
        if expected is not Undefined:
            # graphql-core has no value rules: only they may reject what it accepts.
            assert codes <= RULE_CODES, (value, result.errors)
    else:
        assert expected is not Undefined, value
        assert list(result.operations) == ours == expected
    # With an input, references are checked too: they may only add UNKNOWN_REFERENCE.
    checked = _validated(target, value, INPUT)
    if isinstance(checked, InvalidOutputError):
        if not isinstance(result, InvalidOutputError):
            codes = {OutputErrorCode(e["code"]) for e in checked.errors}
            assert codes == {OutputErrorCode.UNKNOWN_REFERENCE}, checked.errors
    else:
        assert checked == result


@pytest.mark.parametrize("target", o.OUTPUT_TARGETS)
def test_compiled_coercion_matches_graphql_core(target: str) -> None:
    operation = o.output_type(target).fields["operations"].type.of_type.of_type

    @settings(max_examples=250, deadline=None)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        count = data.draw(st.integers(0, 4))
        malformed = data.draw(st.sampled_from([0, 0, 8, 20]))
        _check(target, {"operations": [_draw(data, operation, malformed) for _ in range(count)]})

    run()


@pytest.mark.parametrize("target", o.OUTPUT_TARGETS)
def test_compiled_coercion_matches_graphql_core_on_whole_documents(target: str) -> None:
    @settings(max_examples=60, deadline=None)
    @given(data=st.data())
    def run(data: st.DataObject) -> None:
        _check(target, _draw(data, GraphQLNonNull(o.output_type(target))))

    run()
