"""Deploy-time rejections of input queries: each with its stable code and location."""

from __future__ import annotations

import pytest

from functions_sdk.apis import get_target
from functions_sdk.query import (
    LIST_ITEMS_LIMIT,
    QUERY_BYTES_LIMIT,
    QUERY_COST_LIMIT,
    InvalidInputQueryError,
    InvalidVariableValueError,
    compile_query,
)
from functions_sdk.query.checks import query_size

DISCOUNT = get_target("cart.lines.discounts.generate.run")


def _reject(text: str) -> InvalidInputQueryError:
    with pytest.raises(InvalidInputQueryError) as info:
        compile_query(DISCOUNT, text)
    error = info.value
    assert error.to_dict()["code"] == error.code
    assert error.to_dict()["locations"] == error.locations
    return error


def _leaves(n: int) -> str:
    """A query of cost exactly `n`: `n` aliased leaf fields."""
    return "{ cart { lines { " + " ".join(f"f{i}: quantity" for i in range(n)) + " } } }"


def test_syntax_error_is_located_where_parsing_stopped() -> None:
    error = _reject("query Input {\n  cart {\n    lines { id }\n")
    assert error.code == "INPUT_QUERY_SYNTAX"
    assert error.locations == [{"line": 4, "column": 1}]
    assert "Expected Name, found <EOF>" in error.message


def test_unknown_field_is_located_and_suggests_the_right_name() -> None:
    error = _reject("{\n  cart {\n    linez { id }\n  }\n}")
    assert error.code == "INPUT_QUERY_INVALID"
    assert error.locations == [{"line": 3, "column": 5}]
    assert "Did you mean 'lines'?" in error.message
    assert "cartwheel fn schema --target cart.lines.discounts.generate.run" in error.message


def test_field_of_another_target_is_unknown() -> None:
    error = _reject("{ paymentMethods { id } }")
    assert error.code == "INPUT_QUERY_INVALID"
    assert error.locations == [{"line": 1, "column": 3}]


def test_cost_30_is_accepted_and_31_rejected_at_the_field_that_crosses_the_limit() -> None:
    assert compile_query(DISCOUNT, _leaves(QUERY_COST_LIMIT)).cost == 30
    text = _leaves(QUERY_COST_LIMIT + 1)
    error = _reject(text)
    assert error.code == "INPUT_QUERY_TOO_COSTLY"
    assert error.details["cost"] == 31
    assert error.locations == [{"line": 1, "column": text.index("f30:") + 1}]


def test_cost_model_counts_metafields_and_tag_tests_as_3_and_typename_as_0() -> None:
    query = compile_query(
        DISCOUNT,
        """{ __typename cart { lines { id merchandise { __typename ... on ProductVariant {
        metafield(key: "a") { value type jsonValue } product { hasAnyTag(tags: ["x"])
        hasTags(tags: ["x"]) { tag hasTag } inAnyCollection inCollections { isMember } } } } } }
        discount { metafield(key: "c") { value } } }""",
    )
    assert query.cost == 1 + 3 + 3 * 4 + 3


def test_cost_counts_a_fragment_at_each_spread() -> None:
    text = (
        "{ cart { lines { ...F } a: lines { ...F } } } "
        "fragment F on CartLine { " + " ".join(f"f{i}: quantity" for i in range(15)) + " }"
    )
    assert compile_query(DISCOUNT, text).cost == 30
    error = _reject(text.replace("...F } }", "...F } b: lines { id } }"))
    assert error.code == "INPUT_QUERY_TOO_COSTLY"


def _sized(n: int) -> str:
    """A valid query of exactly `n` bytes (without comments), padded with spaces."""
    base = "{ cart { lines { id } } }"
    return base[:-1] + " " * (n - len(base)) + "}"


def test_3000_bytes_are_accepted_and_3001_rejected_at_the_first_byte_over() -> None:
    assert compile_query(DISCOUNT, _sized(QUERY_BYTES_LIMIT)).size == 3000
    error = _reject(_sized(QUERY_BYTES_LIMIT + 1))
    assert error.code == "INPUT_QUERY_TOO_LARGE"
    assert error.details["size"] == 3001
    assert error.locations == [{"line": 1, "column": 3001}]


def test_comments_do_not_count_towards_the_size() -> None:
    comment = "# " + "why this query looks the way it does " * 100 + "\n"
    text = comment + _sized(QUERY_BYTES_LIMIT - len(comment) - 10) + "\n" + comment
    assert len(text.encode()) > 2 * QUERY_BYTES_LIMIT
    query = compile_query(DISCOUNT, text)
    assert query.size == query_size(text) == len(text.encode()) - 2 * (len(comment) - 1)


def test_size_counts_utf8_bytes() -> None:
    text = '{ cart { attribute(key: "' + "é" * 1490 + '") { value } } }'
    assert len(text) < QUERY_BYTES_LIMIT < len(text.encode())
    assert _reject(text).code == "INPUT_QUERY_TOO_LARGE"


def test_huge_text_is_rejected_before_parsing() -> None:
    error = _reject("#" * 200_000)
    assert error.code == "INPUT_QUERY_TOO_LARGE"
    assert error.locations == [{"line": 1, "column": 1}]


def _tags(n: int) -> str:
    return "[" + ", ".join(f'"t{i}"' for i in range(n)) + "]"


def test_list_of_100_is_accepted_and_101_rejected_at_the_list() -> None:
    head = "{ cart { buyerIdentity { customer {\n  hasAnyTag(tags: "
    compile_query(DISCOUNT, head + _tags(LIST_ITEMS_LIMIT) + ") } } } }")
    error = _reject(head + _tags(LIST_ITEMS_LIMIT + 1) + ") } } } }")
    assert error.code == "INPUT_QUERY_LIST_TOO_LONG"
    assert error.details["items"] == 101
    assert error.locations == [{"line": 2, "column": 19}]


def test_list_variable_default_over_100_is_rejected() -> None:
    text = (
        f"query Input($t: [String!] = {_tags(101)}) "
        "{ cart { buyerIdentity { customer { hasAnyTag(tags: $t) } } } }"
    )
    error = _reject(text)
    assert error.code == "INPUT_QUERY_LIST_TOO_LONG"
    assert error.locations == [{"line": 1, "column": 29}]


def test_undeclared_variable_is_located_at_its_use() -> None:
    error = _reject(
        "query Input {\n  cart { buyerIdentity { customer { hasAnyTag(tags: $vip) } } }\n}"
    )
    assert error.code == "INPUT_QUERY_VARIABLE"
    assert error.locations[0] == {"line": 2, "column": 53}
    assert "Variable '$vip' is not defined" in error.message


def test_unused_and_mistyped_variables_are_rejected() -> None:
    unused = _reject("query Input($x: String) { cart { lines { id } } }")
    assert (unused.code, unused.locations) == ("INPUT_QUERY_VARIABLE", [{"line": 1, "column": 13}])
    mistyped = _reject(
        "query Input($x: [String!]) { cart { lines { merchandise { ... on ProductVariant {"
        " product { inAnyCollection(ids: $x) } } } } } }"
    )
    assert mistyped.code == "INPUT_QUERY_VARIABLE"
    assert "used in position expecting type '[ID!]'" in mistyped.message


NON_NULL = (
    "query Input($vip: [String!]!) {\n"
    "  cart { buyerIdentity { customer { hasAnyTag(tags: $vip) } } }\n}"
)


@pytest.mark.parametrize("metafield", ['{"vip": null}', "{}", None])
def test_non_null_variable_given_null_or_missing_is_rejected_at_its_definition(
    metafield: str | None,
) -> None:
    query = compile_query(DISCOUNT, NON_NULL)
    with pytest.raises(InvalidVariableValueError) as info:
        query.variables_from_metafield(metafield)
    assert info.value.code == "INVALID_VARIABLE_VALUE"
    assert info.value.locations == [{"line": 1, "column": 13}]
    assert "non-null type '[String!]!'" in info.value.message
    with pytest.raises(InvalidVariableValueError):
        query.execute({}, variables={"vip": None})


def test_variables_metafield_values_are_checked() -> None:
    query = compile_query(DISCOUNT, NON_NULL)
    assert query.variables_from_metafield('{"vip": ["a"], "unrelated": 1}') == {"vip": ["a"]}
    cases = {
        "[1]": "must be a JSON object",
        "{oops": "not valid JSON",
        '{"vip": 5}': "String cannot represent a non string value",
        '{"vip": [' + ",".join(['"t"'] * 101) + "]}": "101 items, over the limit of 100",
    }
    for value, message in cases.items():
        with pytest.raises(InvalidVariableValueError) as info:
            query.variables_from_metafield(value)
        assert message in info.value.message


def test_missing_nullable_variable_is_null_and_a_declared_default_applies() -> None:
    query = compile_query(
        DISCOUNT,
        'query Input($a: [String!], $b: String = "x") { cart { buyerIdentity { customer {'
        " hasAnyTag(tags: $a) metafield(key: $b) { value } } } } }",
    )
    assert query.variables_from_metafield(None) == {"a": None}
    assert query.variables_from_metafield('{"b": "y"}') == {"a": None, "b": "y"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("query A { cart { lines { id } } } query B { cart { lines { id } } }", "exactly one"),
        ("mutation { cart }", "not a `mutation`"),
        ("{ __schema { types { name } } }", "Introspection"),
        ('{ __type(name: "Cart") { name } }', "Introspection"),
        ("{ cart { lines { id @cached } } }", "Unknown directive"),
        ("{ cart { lines } }", "must have a selection of subfields"),
        ("{ cart { lines { merchandise { ... on Product { id } } } } }", "can never be of type"),
    ],
)
def test_other_invalid_queries(text: str, message: str) -> None:
    error = _reject(text)
    assert error.code == "INPUT_QUERY_INVALID"
    assert message in error.message
    assert error.locations


def test_size_location_skips_comments() -> None:
    comment = "# " + "x" * 500 + "\n"
    body = _sized(QUERY_BYTES_LIMIT + 1)
    error = _reject(comment + body)
    assert error.code == "INPUT_QUERY_TOO_LARGE"
    assert error.details["size"] == QUERY_BYTES_LIMIT + 1 + 1  # the comment's newline counts
    assert error.locations == [{"line": 2, "column": 3000}]
