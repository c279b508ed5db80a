"""`cartwheel fn schema` and `cartwheel fn query` through the real console entry point."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
from click.testing import CliRunner

from cartwheel.cli import main
from functions_sdk.apis import get_target
from functions_sdk.query import compile_query

ROOT = Path(__file__).resolve().parents[2]
SMALL = ROOT / "examples/carts/small.json"
LARGE = ROOT / "examples/carts/large.json"
DISCOUNT_QUERY = ROOT / "examples/discount-function/input.graphql"
DISCOUNT = "cart.lines.discounts.generate.run"


def test_schema_prints_the_targets_sdl() -> None:
    result = CliRunner().invoke(main, ["fn", "schema", "--target", "cart.validations.generate.run"])
    assert result.exit_code == 0, result.output
    assert result.output == get_target("cart.validations.generate.run").input_sdl() + "\n"
    assert "validation: Validation!" in result.output


def test_schema_json_and_unknown_target() -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["fn", "schema", "-t", DISCOUNT, "--json"])
    assert result.exit_code == 0
    doc = json.loads(result.output)
    assert (doc["ok"], doc["target"], doc["order"]) == (True, DISCOUNT, 1)
    assert "discount: Discount!" in doc["sdl"]
    assert doc["output_sdl"] == get_target(DISCOUNT).output_sdl()
    output = runner.invoke(main, ["fn", "schema", "-t", DISCOUNT, "--output"])
    assert output.exit_code == 0
    assert output.output == get_target(DISCOUNT).output_sdl() + "\n"
    assert "productDiscountsAdd" in output.output
    bad = runner.invoke(main, ["fn", "schema", "-t", "purchase.product-discount.run"])
    assert bad.exit_code == 2
    assert "cart.lines.discounts.generate.run" in bad.output


def test_query_prints_the_function_input(tmp_path: Path) -> None:
    owner = tmp_path / "owner.json"
    config = '{"tiers": []}'
    owner.write_text(
        json.dumps(
            {
                "id": "gid://cartwheel/Discount/1",
                "discountClasses": ["PRODUCT"],
                "metafields": [
                    {
                        "namespace": "cartwheel",
                        "key": "function-configuration",
                        "type": "json",
                        "value": config,
                    }
                ],
            }
        )
    )
    variables = '{"vipTags": ["vip"]}'
    args = [
        "fn",
        "query",
        "-t",
        DISCOUNT,
        "-q",
        str(DISCOUNT_QUERY),
        "-c",
        str(LARGE),
        "--variables",
        variables,
        "--owner",
        str(owner),
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    printed = json.loads(result.output)
    assert len(printed["cart"]["lines"]) == 200
    assert printed["cart"]["buyerIdentity"] == {"customer": {"hasAnyTag": True}}
    assert printed["discount"] == {
        "discountClasses": ["PRODUCT"],
        "metafield": {"jsonValue": {"tiers": []}},
    }
    # The same bytes the library produces for the same inputs.
    query = compile_query(get_target(DISCOUNT), DISCOUNT_QUERY.read_text())
    expected = query.execute(
        orjson.loads(LARGE.read_bytes()),
        owner=json.loads(owner.read_text()),
        variables=query.variables_from_metafield(variables),
    )
    assert printed == orjson.loads(expected)

    variables_file = tmp_path / "variables.json"
    variables_file.write_text(variables)
    from_file = CliRunner().invoke(
        main, [*args[:-4], "--variables", str(variables_file), *args[-2:]]
    )
    assert from_file.exit_code == 0, from_file.output
    assert json.loads(from_file.output) == printed

    as_json = CliRunner().invoke(main, [*args, "--json"])
    assert as_json.exit_code == 0
    doc = json.loads(as_json.output)
    assert doc["ok"] is True
    assert doc["input"] == printed
    assert (doc["cost"], doc["size"], doc["bytes"]) == (query.cost, query.size, len(expected))


def test_query_rejections_exit_3_with_code_and_location(tmp_path: Path) -> None:
    runner = CliRunner()
    bad_query = tmp_path / "input.graphql"
    bad_query.write_text("query Input {\n  cart { linez { id } }\n}\n")
    result = runner.invoke(
        main, ["fn", "query", "-t", DISCOUNT, "-q", str(bad_query), "-c", str(SMALL), "--json"]
    )
    assert result.exit_code == 3
    error = json.loads(result.output)["error"]
    assert error["code"] == "INPUT_QUERY_INVALID"
    assert error["locations"] == [{"line": 2, "column": 10}]

    human = runner.invoke(
        main, ["fn", "query", "-t", DISCOUNT, "-q", str(bad_query), "-c", str(SMALL)]
    )
    assert human.exit_code == 3
    assert "INPUT_QUERY_INVALID" in human.output

    needs_var = tmp_path / "vars.graphql"
    needs_var.write_text(
        "query Input($t: [String!]!) "
        "{ cart { buyerIdentity { customer { hasAnyTag(tags: $t) } } } }"
    )
    result = runner.invoke(
        main, ["fn", "query", "-t", DISCOUNT, "-q", str(needs_var), "-c", str(SMALL), "--json"]
    )
    assert result.exit_code == 3
    assert json.loads(result.output)["error"]["code"] == "INVALID_VARIABLE_VALUE"


def test_query_rejects_a_cart_that_is_not_a_snapshot(tmp_path: Path) -> None:
    runner = CliRunner()
    cases = {
        "not json": "{",
        "old version": json.dumps({"version": 0}),
        "missing keys": json.dumps({"version": 1, "cart": {}}),
        "wrong shape": json.dumps({**json.loads(SMALL.read_text()), "cart": {"lines": "x"}}),
    }
    for name, content in cases.items():
        cart = tmp_path / f"{name}.json"
        cart.write_text(content)
        result = runner.invoke(
            main,
            ["fn", "query", "-t", DISCOUNT, "-q", str(DISCOUNT_QUERY), "-c", str(cart), "--json"],
        )
        assert result.exit_code == 3, name
        assert json.loads(result.output)["error"]["code"] == "INVALID_CART", name
