"""`cartwheel fn typegen` through the real CLI entry point.

The input JSON Schema is checked against what the query engine really yields on the
cart fixtures; the output JSON Schema against outputs the validator accepts and rejects;
and (slow) the generated Rust compiles for wasm32-wasi, deserializes the real input and
serializes an output that `validate_output` accepts, run by the real runner.
"""

from __future__ import annotations

import os
import subprocess
from decimal import Decimal
from pathlib import Path
from typing import Any

import jsonschema
import orjson
import pytest
from click.testing import CliRunner

from cartwheel.cli import main
from functions_sdk.apis import get_target
from functions_sdk.apis import outputs as o
from functions_sdk.output import validate_output
from functions_sdk.query import compile_query
from functions_sdk.runner import RunStatus, run

ROOT = Path(__file__).resolve().parents[2]
CARTS = [ROOT / "examples" / "carts" / "small.json", ROOT / "examples" / "carts" / "large.json"]
DISCOUNT_QUERY = ROOT / "examples" / "discount-function" / "input.graphql"

# Aliases, a named fragment on a union member without __typename, a variable @include,
# nullable and list fields.
DELIVERY_QUERY = """
query Input($withCost: Boolean!) {
  cart {
    items: lines {
      id
      qty: quantity
      cost @include(if: $withCost) { totalAmount { amount currencyCode } }
      merchandise { ...Variant }
    }
    deliveryGroups {
      id
      deliveryAddress { countryCode zip }
      deliveryOptions { handle title cost { amount } deliveryMethodType }
    }
  }
  localization { country { isoCode } }
  deliveryCustomization { metafield(namespace: "cartwheel", key: "config") { value jsonValue } }
}
fragment Variant on ProductVariant {
  id
  sku
  product { handle hasTags(tags: ["sale"]) { tag hasTag } }
}
"""

# __typename-tagged union with inline fragments on both members, skip with a literal.
PAYMENT_QUERY = """
query Input {
  paymentMethods { id name }
  cart {
    cost { totalAmount { amount } }
    lines {
      merchandise {
        __typename
        ... on ProductVariant { title requiresShipping }
        ... on CustomProduct { customTitle: title }
      }
      quantity @skip(if: false)
      id @skip(if: true)
    }
  }
  shop { localTime { date } }
}
"""

CASES = [
    ("cart.lines.discounts.generate.run", DISCOUNT_QUERY.read_text(), [None]),
    (
        "cart.delivery-options.transform.run",
        DELIVERY_QUERY,
        [{"withCost": True}, {"withCost": False}],
    ),
    ("cart.payment-methods.transform.run", PAYMENT_QUERY, [None]),
]


def invoke(*args: str) -> Any:
    result = CliRunner().invoke(main, ["fn", "typegen", *args], catch_exceptions=False)
    return result


def typegen_json(tmp_path: Path, target: str, query: str, *args: str) -> dict[str, Any]:
    query_file = tmp_path / "input.graphql"
    query_file.write_text(query)
    result = invoke("--target", target, "--query", str(query_file), "--json", *args)
    assert result.exit_code == 0, result.output
    document: dict[str, Any] = orjson.loads(result.output)
    assert document["ok"] is True
    return document


@pytest.mark.parametrize(("target", "query", "variable_sets"), CASES)
def test_input_json_schema_matches_what_the_query_yields(
    tmp_path: Path, target: str, query: str, variable_sets: list[dict[str, Any] | None]
) -> None:
    document = typegen_json(tmp_path, target, query, "--lang", "jsonschema")
    schema = orjson.loads(document["code"])
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(
        schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
    )
    compiled = compile_query(get_target(target), query)
    for cart in CARTS:
        snapshot = orjson.loads(cart.read_bytes())
        for variables in variable_sets:
            values = compiled.variables_from_metafield(orjson.dumps(variables or {}).decode())
            data = orjson.loads(compiled.execute(snapshot, variables=values))
            errors = [e.message for e in validator.iter_errors(data)]
            assert errors == [], (cart.name, variables, errors[:3])
            # The schema is closed: an extra or a missing key is caught.
            assert not validator.is_valid({**data, "extra": 1})
            assert not validator.is_valid({k: v for k, v in data.items() if k != "cart"})


def test_input_json_schema_shapes(tmp_path: Path) -> None:
    schema = orjson.loads(
        typegen_json(
            tmp_path, "cart.delivery-options.transform.run", DELIVERY_QUERY, "--lang", "jsonschema"
        )["code"]
    )
    defs = schema["$defs"]
    items = defs["InputCartItems"]
    # Aliases are the keys; the @include'd field may be absent; id, qty always present.
    assert set(items["properties"]) == {"id", "qty", "cost", "merchandise"}
    assert items["required"] == ["id", "qty", "merchandise"]
    # Merchandise without __typename: one object, the variant's keys optional.
    merchandise = defs["InputCartItemsMerchandise"]
    assert merchandise["type"] == "object"
    assert "required" not in merchandise
    # Nullable fields admit null; Decimals are strings.
    address = defs["InputCartDeliveryGroups"]["properties"]["deliveryAddress"]
    assert address["anyOf"][1] == {"type": "null"}
    amount = defs["InputCartDeliveryGroupsDeliveryOptionsCost"]["properties"]["amount"]
    assert amount == {"type": "string", "pattern": r"^-?\d+(\.\d+)?$"}
    payment = orjson.loads(
        typegen_json(
            tmp_path, "cart.payment-methods.transform.run", PAYMENT_QUERY, "--lang", "jsonschema"
        )["code"]
    )
    union = payment["$defs"]["InputCartLinesMerchandise"]
    assert [v["$ref"] for v in union["oneOf"]] == [
        "#/$defs/InputCartLinesMerchandiseOnProductVariant",
        "#/$defs/InputCartLinesMerchandiseOnCustomProduct",
    ]
    variant = payment["$defs"]["InputCartLinesMerchandiseOnProductVariant"]
    assert variant["properties"]["__typename"] == {"const": "ProductVariant"}
    # @skip(if: true) removes the field; @skip(if: false) keeps it required.
    assert payment["$defs"]["InputCartLines"]["required"] == ["merchandise", "quantity"]


VALID_OUTPUTS: dict[str, dict[str, Any]] = {
    o.CART_LINES_DISCOUNTS: {
        "operations": [
            {
                "productDiscountsAdd": {
                    "candidates": [
                        {
                            "targets": [{"cartLine": {"id": "gid://cartwheel/CartLine/1"}}],
                            "value": {"percentage": {"value": 10}},
                        }
                    ],
                    "selectionStrategy": "FIRST",
                }
            },
            {"enteredDiscountCodesAccept": {"codes": [{"code": "WELCOME10"}]}},
        ]
    },
    o.CART_VALIDATIONS: {
        "operations": [{"validationAdd": {"errors": [{"message": "No", "target": "$.cart"}]}}]
    },
    o.CART_TRANSFORM: {
        "operations": [
            {
                "lineUpdate": {
                    "cartLineId": "gid://cartwheel/CartLine/1",
                    "price": {"adjustment": {"fixedPricePerUnit": {"amount": "9.50"}}},
                }
            }
        ]
    },
}


@pytest.mark.parametrize("target", sorted(VALID_OUTPUTS))
def test_output_json_schema_agrees_with_the_validator(tmp_path: Path, target: str) -> None:
    document = typegen_json(
        tmp_path, target, "query { __typename }", "--lang", "jsonschema", "--side", "output"
    )
    assert document["side"] == "output"
    schema = orjson.loads(document["code"])
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    valid = VALID_OUTPUTS[target]
    validate_output(target, valid)
    assert validator.is_valid(valid)
    assert validator.is_valid({"operations": []})
    two_operations = {"operations": [{**valid["operations"][0], "other": {}}]}
    assert not validator.is_valid(two_operations)
    assert not validator.is_valid({"operations": [{}]})
    assert not validator.is_valid({})


def test_output_json_schema_carries_value_rules(tmp_path: Path) -> None:
    target = o.CART_LINES_DISCOUNTS
    schema = orjson.loads(
        typegen_json(
            tmp_path, target, "query { __typename }", "--lang", "jsonschema", "--side", "output"
        )["code"]
    )
    validator = jsonschema.Draft202012Validator(schema)
    output = VALID_OUTPUTS[target]
    candidate = output["operations"][0]["productDiscountsAdd"]["candidates"][0]
    for bad in (101, -1):
        changed = orjson.loads(orjson.dumps(output))
        changed["operations"][0]["productDiscountsAdd"]["candidates"][0]["value"] = {
            "percentage": {"value": bad}
        }
        assert not validator.is_valid(changed)
    assert candidate["value"] == {"percentage": {"value": 10}}
    percentage = schema["$defs"]["Percentage"]["properties"]["value"]
    assert percentage["anyOf"][1] == {"type": "number", "minimum": 0, "maximum": 100}
    assert "Validated against: >= 0 and <= 100." in percentage["description"]


def test_rust_structs_through_the_cli(tmp_path: Path) -> None:
    query_file = tmp_path / "input.graphql"
    query_file.write_text(PAYMENT_QUERY)
    out = tmp_path / "schema.rs"
    result = invoke(
        "-t", "cart.payment-methods.transform.run", "-q", str(query_file), "-o", str(out)
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Wrote {out}")
    code = out.read_text()
    assert "pub mod input {" in code
    assert "pub mod output {" in code
    assert "pub type Output = CartPaymentMethodsTransformRunResult;" in code
    # The tagged union, serde renames, Option for nullable, externally tagged @oneOf.
    assert '#[serde(tag = "__typename")]\n    pub enum InputCartLinesMerchandise {' in code
    assert "ProductVariant(InputCartLinesMerchandiseOnProductVariant)," in code
    assert '#[serde(rename = "requiresShipping")]\n        pub requires_shipping: bool,' in code
    assert "pub title: Option<String>," in code
    assert (
        '    #[serde(rename = "paymentMethodHide")]\n'
        "        PaymentMethodHide(PaymentMethodHideOperation)," in code
    )
    assert (
        '#[serde(default, skip_serializing_if = "Option::is_none")]\n'
        "        pub placements: Option<Vec<PaymentCustomizationPaymentMethodPlacement>>,"
    ) in code
    assert '#[serde(rename = "ACCELERATED_CHECKOUT")]\n        AcceleratedCheckout,' in code
    # stdout by default, same code.
    printed = invoke("-t", "cart.payment-methods.transform.run", "-q", str(query_file))
    assert printed.output == code


def test_invalid_query_exits_3_with_its_code(tmp_path: Path) -> None:
    query_file = tmp_path / "input.graphql"
    query_file.write_text("query { cart { nope } }")
    result = invoke("-t", o.CART_VALIDATIONS, "-q", str(query_file), "--json")
    assert result.exit_code == 3
    error = orjson.loads(result.output)["error"]
    assert error["code"] == "INPUT_QUERY_INVALID"
    unknown = invoke("-t", "purchase.validation.run", "-q", str(query_file))
    assert unknown.exit_code == 2


CARGO_TOML = """\
[package]
name = "typegen-check"
version = "0.1.0"
edition = "2021"
publish = false

[dependencies]
serde = { version = "1.0", features = ["derive"] }
serde_json = "1.0"

# Under the 256 kB module limit, as in examples/discount-function.
[profile.release]
opt-level = "z"
lto = true
codegen-units = 1
panic = "abort"
strip = true
"""

CARGO_CONFIG = """\
[source.crates-io]
replace-with = "debian"

[source.debian]
directory = "/usr/share/cargo/registry"

[net]
offline = true
"""

MAIN_RS = r"""
mod schema;

use schema::input::{Input, InputCartLinesMerchandise};
use schema::output::*;
use schema::Decimal;
use std::io::Read;

fn main() {
    let mut raw = String::new();
    std::io::stdin().read_to_string(&mut raw).unwrap();
    let input: Input = serde_json::from_str(&raw).expect("the input matches the generated types");
    // One candidate targeting every eligible line keeps the output small on big carts.
    let mut targets = Vec::new();
    for line in &input.cart.lines {
        if let InputCartLinesMerchandise::ProductVariant(variant) = &line.merchandise {
            if !variant.product.is_gift_card {
                targets.push(ProductDiscountCandidateTarget::CartLine(CartLineTarget {
                    id: line.id.clone(),
                    quantity: None,
                }));
            }
        }
    }
    let candidates = vec![ProductDiscountCandidate {
        associated_discount_code: None,
        message: Some("10% off".to_string()),
        targets,
        value: ProductDiscountCandidateValue::Percentage(Percentage { value: Decimal::from(10.0) }),
    }];
    let subtotal: f64 =
        input.cart.lines.iter().map(|l| l.cost.subtotal_amount.amount.as_f64()).sum();
    let output = Output {
        operations: vec![
            CartOperation::ProductDiscountsAdd(ProductDiscountsAddOperation {
                candidates,
                selection_strategy: ProductDiscountSelectionStrategy::First,
            }),
            CartOperation::OrderDiscountsAdd(OrderDiscountsAddOperation {
                candidates: vec![OrderDiscountCandidate {
                    associated_discount_code: None,
                    conditions: Some(vec![Condition::OrderMinimumSubtotal(OrderMinimumSubtotal {
                        excluded_cart_line_ids: vec![],
                        minimum_amount: Decimal::from(50i64),
                    })]),
                    message: None,
                    targets: vec![OrderDiscountCandidateTarget::OrderSubtotal(OrderSubtotalTarget {
                        excluded_cart_line_ids: vec![],
                    })],
                    value: OrderDiscountCandidateValue::FixedAmount(FixedAmount {
                        amount: Decimal::from((subtotal * 0.01 * 100.0).round() / 100.0),
                    }),
                }],
                selection_strategy: OrderDiscountSelectionStrategy::Maximum,
            }),
        ],
    };
    println!("{}", serde_json::to_string(&output).unwrap());
}
"""


@pytest.mark.slow
def test_generated_rust_compiles_for_wasi_and_round_trips(tmp_path: Path) -> None:
    target = o.CART_LINES_DISCOUNTS
    project = tmp_path / "typegen-check"
    (project / "src").mkdir(parents=True)
    (project / ".cargo").mkdir()
    (project / "Cargo.toml").write_text(CARGO_TOML)
    (project / ".cargo" / "config.toml").write_text(CARGO_CONFIG)
    (project / "src" / "main.rs").write_text(MAIN_RS)
    result = invoke(
        "-t", target, "-q", str(DISCOUNT_QUERY), "-o", str(project / "src" / "schema.rs")
    )
    assert result.exit_code == 0, result.output

    build = subprocess.run(
        ["/usr/bin/cargo", "build", "--release", "--offline", "--target", "wasm32-wasi"],
        cwd=project,
        env={**os.environ, "RUSTC": "/usr/bin/rustc", "CARGO_TARGET_DIR": str(tmp_path / "target")},
        capture_output=True,
        text=True,
        check=False,
        timeout=280,
    )
    assert build.returncode == 0, build.stderr[-4000:]
    wasm = (tmp_path / "target" / "wasm32-wasi" / "release" / "typegen-check.wasm").read_bytes()

    query = compile_query(get_target(target), DISCOUNT_QUERY.read_text())
    for cart in CARTS:
        snapshot = orjson.loads(cart.read_bytes())
        input_json = query.execute(snapshot, variables=query.variables_from_metafield(None))
        outcome = run(wasm, input_json)
        assert outcome.status is RunStatus.SUCCEEDED, (outcome.message, outcome.logs)
        validated = validate_output(target, outcome.output, input=snapshot)
        products, order = validated.operations
        assert isinstance(products, o.ProductDiscountsAddOperation)
        assert isinstance(order, o.OrderDiscountsAddOperation)
        lines = {line["id"] for line in snapshot["cart"]["lines"]}
        (candidate,) = products.candidates
        assert candidate.value == o.Percentage(Decimal(10))
        assert 0 < len(candidate.targets) <= len(lines)
        assert {t.id for t in candidate.targets} <= lines
        subtotal = sum(
            Decimal(line["cost"]["subtotalAmount"]["amount"]) for line in snapshot["cart"]["lines"]
        )
        assert order.candidates[0].value == o.FixedAmount(
            (subtotal / 100).quantize(Decimal("0.01"))
        )


def test_output_types_need_no_query() -> None:
    schema = invoke("-t", o.CART_VALIDATIONS, "--lang", "jsonschema", "--side", "output", "--json")
    assert schema.exit_code == 0, schema.output
    document = orjson.loads(schema.stdout)
    assert orjson.loads(document["code"])["title"] == f"Output of {o.CART_VALIDATIONS}"
    rust = invoke("-t", o.CART_VALIDATIONS)
    assert rust.exit_code == 0, rust.output
    assert "pub mod input {" not in rust.stdout
    assert "pub type Output = CartValidationsGenerateRunResult;" in rust.stdout
    missing = invoke("-t", o.CART_VALIDATIONS, "--lang", "jsonschema")
    assert missing.exit_code == 2
    assert "--query is required" in missing.output


def test_union_without_typename_everywhere_is_one_struct(tmp_path: Path) -> None:
    query = "query { cart { lines { merchandise { ... on ProductVariant { __typename id } } } } }"
    target = o.CART_VALIDATIONS
    schema = orjson.loads(typegen_json(tmp_path, target, query, "--lang", "jsonschema")["code"])
    merchandise = schema["$defs"]["InputCartLinesMerchandise"]
    assert set(merchandise["properties"]) == {"__typename", "id"}
    assert "required" not in merchandise
    validator = jsonschema.Draft202012Validator(schema)
    compiled = compile_query(get_target(target), query)
    for cart in CARTS:
        assert validator.is_valid(orjson.loads(compiled.execute(orjson.loads(cart.read_bytes()))))
    code = typegen_json(tmp_path, target, query)["code"]
    assert (
        '#[serde(rename = "__typename", default)]\n        pub typename: Option<String>,'
    ) in code
