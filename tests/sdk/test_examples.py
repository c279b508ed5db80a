"""The example functions (examples/*): every fixture against the committed module, the
input queries against the cart fixtures, the C JSON reader against hostile input, and
(slow) a rebuild from source that must reproduce the committed module."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions_sdk.apis import get_target
from functions_sdk.output import validate_output
from functions_sdk.project import Fixture, Project, build, load_project
from functions_sdk.query import QUERY_BYTES_LIMIT, QUERY_COST_LIMIT, compile_query
from functions_sdk.runner import CompiledModule, RunResult, load_module, run
from functions_sdk.templates import EXAMPLE_PARTS, create_project
from functions_sdk.templates import EXAMPLES as TEMPLATE_EXAMPLES

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = {
    "discount-function": ROOT / "examples" / "discount-function",
    "delivery-customization": ROOT / "examples" / "delivery-customization",
}
CARTS = ROOT / "examples" / "carts"


def _cases() -> Iterator[Any]:
    for example, path in EXAMPLES.items():
        for fixture in load_project(path).fixtures():
            yield pytest.param(example, fixture.name, id=f"{example}/{fixture.name}")


Compiled = Callable[[Project], CompiledModule]


@pytest.fixture(scope="module")
def compiled() -> Iterator[Compiled]:
    """The projects' committed modules, each loaded once through the runner's own
    validation (and released before the interpreter shuts down)."""
    modules: dict[Path, CompiledModule] = {}

    def get(project: Project) -> CompiledModule:
        if project.wasm_path not in modules:
            modules[project.wasm_path] = load_module(
                project.read_wasm(), limits=project.limits, export=project.export
            )
        return modules[project.wasm_path]

    yield get
    modules.clear()


def check_fixture(project: Project, fixture: Fixture, result: RunResult) -> None:
    if fixture.expects_error:
        assert result.error_code == fixture.error_code, result.message
        assert fixture.error_logs is not None
        assert fixture.error_logs in result.logs
        return
    assert result.ok, f"{result.error_code}: {result.message}\n{result.logs}"
    output = json.loads(result.output)
    assert output == fixture.output
    # The expected output must also be one the platform accepts for this target.
    validate_output(project.target, result.output, input=fixture.input)


@pytest.mark.parametrize(("example", "fixture_name"), list(_cases()))
def test_fixture_against_committed_module(
    example: str, fixture_name: str, compiled: Compiled
) -> None:
    project = load_project(EXAMPLES[example])
    fixture = next(f for f in project.fixtures() if f.name == fixture_name)
    result = run(compiled(project), fixture.input_bytes(), project.limits, export=project.export)
    check_fixture(project, fixture, result)
    assert result.fuel_consumed is not None
    assert result.fuel_consumed < project.limits.instructions // 20


@pytest.mark.parametrize(
    ("example", "size", "cost"),
    [("discount-function", 615, 14), ("delivery-customization", 384, 8)],
)
def test_input_query_fits_shopify_limits(example: str, size: int, cost: int) -> None:
    project = load_project(EXAMPLES[example])
    query = compile_query(get_target(project.target), project.read_input_query())
    assert (query.size, query.cost) == (size, cost)
    assert query.size <= QUERY_BYTES_LIMIT
    assert query.cost <= QUERY_COST_LIMIT
    assert project.wasm_path.stat().st_size <= project.limits.module_bytes


# ---------------------------------------------------------------------------------
# The discount end to end on the cart fixtures: input query → module → output, checked
# against an independent Python statement of the discount's rules.


def sample(example: str, name: str) -> Any:
    """The example's sample `configuration.json` or `owner.json`."""
    return json.loads((EXAMPLES[example] / name).read_text())


@pytest.mark.parametrize("example", list(EXAMPLES))
def test_sample_owner_carries_the_sample_configuration(example: str) -> None:
    project = load_project(EXAMPLES[example])
    assert project.input_variables is not None
    (metafield,) = sample(example, "owner.json")["metafields"]
    assert (metafield["namespace"], metafield["key"], metafield["type"]) == (
        project.input_variables.namespace,
        project.input_variables.key,
        "json",
    )
    assert json.loads(metafield["value"]) == sample(example, "configuration.json")


def expected_discount(snapshot: dict[str, Any], config: dict[str, Any]) -> dict[str, Any]:
    excluded = set(config["excludedCollectionIds"])
    eligible = [
        line
        for line in snapshot["cart"]["lines"]
        if not line["merchandise"]["product"]["isGiftCard"]
        and not excluded & set(line["merchandise"]["product"]["collectionIds"])
    ]
    quantity = sum(line["quantity"] for line in eligible)
    reached = [t for t in config["tiers"] if Decimal(t["minimum"]) <= quantity]
    if not eligible or not reached:
        return {"operations": []}
    tier = max(reached, key=lambda t: Decimal(t["minimum"]))
    buyer = snapshot["cart"]["buyerIdentity"]
    customer = buyer and buyer["customer"]
    vip = bool(customer and set(customer["tags"]) & set(config["vipTags"]))
    bonus = Decimal(config["vipBonusPercentage"]) if vip else Decimal(0)
    message = tier.get("message", f"{tier['percentage']}% off")
    if vip:
        message += f" + VIP {bonus}%"
    percentage = min(Decimal(tier["percentage"]) + bonus, Decimal(100))
    return {
        "operations": [
            {
                "productDiscountsAdd": {
                    "candidates": [
                        {
                            "message": message,
                            "targets": [{"cartLine": {"id": line["id"]}} for line in eligible],
                            "value": {"percentage": {"value": f"{percentage.normalize():f}"}},
                        }
                    ],
                    "selectionStrategy": "FIRST",
                }
            }
        ]
    }


@pytest.mark.parametrize("cart", ["small", "large"])
def test_discount_on_cart_fixtures_matches_its_rules(cart: str, compiled: Compiled) -> None:
    project = load_project(EXAMPLES["discount-function"])
    snapshot = json.loads((CARTS / f"{cart}.json").read_text())
    query = compile_query(get_target(project.target), project.read_input_query())
    config = sample("discount-function", "configuration.json")
    input_json = query.execute(
        snapshot,
        owner=sample("discount-function", "owner.json"),
        variables=query.variables_from_metafield(json.dumps(config)),
    )
    result = run(compiled(project), input_json, project.limits)
    assert result.ok, result.message
    expected = expected_discount(snapshot, config)
    assert json.loads(result.output) == expected
    assert expected["operations"], "the configuration must discount something on this cart"
    validate_output(project.target, result.output, input=json.loads(input_json))
    assert result.fuel_consumed is not None
    assert result.fuel_consumed < project.limits.instructions


def test_delivery_customization_on_cart_fixture(compiled: Compiled) -> None:
    project = load_project(EXAMPLES["delivery-customization"])
    snapshot = json.loads((CARTS / "large.json").read_text())
    query = compile_query(get_target(project.target), project.read_input_query())
    config = sample("delivery-customization", "configuration.json")
    assert "ON" in config["provinceCodes"], "the cart fixtures ship to Ontario"
    suffix = config["renameSuffix"]
    input_json = query.execute(snapshot, owner=sample("delivery-customization", "owner.json"))
    result = run(compiled(project), input_json, project.limits)
    assert result.ok, result.message
    expected = []
    for group in snapshot["cart"]["deliveryGroups"]:
        for option in group["deliveryOptions"]:
            title = option["title"]
            if title is not None and config["hideTitleContaining"] in title.lower():
                expected.append({"deliveryOptionHide": {"deliveryOptionHandle": option["handle"]}})
            elif title is not None:
                expected.append(
                    {
                        "deliveryOptionRename": {
                            "deliveryOptionHandle": option["handle"],
                            "title": title + suffix,
                        }
                    }
                )
    assert json.loads(result.output) == {"operations": expected}
    validate_output(project.target, result.output, input=json.loads(input_json))


# ---------------------------------------------------------------------------------
# The C example's hand-written JSON reader: hostile input fails the run cleanly.


@pytest.mark.parametrize(
    ("document", "problem"),
    [
        (b"", "unexpected end of input"),
        (b'{"cart": ', "unexpected end of input"),
        (b'{"cart": {}} x', "trailing characters"),
        (b'{"cart": "\\q"}', "bad escape"),
        (b'{"cart": "\\ud800"}', "unpaired UTF-16 surrogate"),
        (b'{"cart": "\\udc00x"}', "unpaired UTF-16 surrogate"),
        (b'{"cart": "\\u12"}', "bad \\u escape"),
        (b'{"cart": "tab\there"}', "control character in string"),
        (b'{"cart": 01}', "expected ',' or '}'"),
        (b'{"cart": -}', "bad number"),
        (b'{"cart": 1.}', "bad fraction"),
        (b'{"cart": 1e}', "bad exponent"),
        (b'{"cart": tru}', "bad literal"),
        (b'{"cart" 1}', "expected ':'"),
        (b"{cart: 1}", "expected a member name"),
        (b"[1 2]", "expected ',' or ']'"),
        (b"[" * 65 + b"]" * 65, "nesting too deep"),
        (b'"unterminated', "unterminated string"),
    ],
)
def test_c_json_reader_rejects_malformed_input(
    document: bytes, problem: str, compiled: Compiled
) -> None:
    project = load_project(EXAMPLES["delivery-customization"])
    result = run(compiled(project), document, project.limits)
    assert result.error_code == "NONZERO_EXIT"
    assert "invalid JSON at byte" in result.logs
    assert problem in result.logs


def test_c_json_reader_accepts_the_deepest_allowed_nesting(compiled: Compiled) -> None:
    project = load_project(EXAMPLES["delivery-customization"])
    nested = {"cart": {"deliveryGroups": []}, "deliveryCustomization": {"metafield": None}}
    padding: Any = 0
    for _ in range(62):  # the root object, the padding object and 62 arrays: 64 levels
        padding = [padding]
    nested["padding"] = {"deep": padding}
    result = run(compiled(project), json.dumps(nested).encode(), project.limits)
    assert result.ok, result.logs
    assert json.loads(result.output) == {"operations": []}


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    title=st.text(st.characters(codec="utf-8"), max_size=40),
    suffix=st.text(st.characters(codec="utf-8"), max_size=10),
    ascii_escapes=st.booleans(),
)
def test_c_json_round_trips_any_text(
    title: str, suffix: str, ascii_escapes: bool, compiled: Compiled
) -> None:
    project = load_project(EXAMPLES["delivery-customization"])
    config = {"provinceCodes": ["QC"], "renameSuffix": suffix, "hideTitleContaining": None}
    document = {
        "cart": {
            "cost": {"subtotalAmount": {"amount": "10.00"}},
            "deliveryGroups": [
                {
                    "deliveryAddress": {"provinceCode": "QC"},
                    "deliveryOptions": [
                        {"handle": 'h"\\', "title": title, "deliveryMethodType": "SHIPPING"}
                    ],
                }
            ],
        },
        "deliveryCustomization": {"metafield": {"jsonValue": config}},
    }
    raw = json.dumps(document, ensure_ascii=ascii_escapes).encode()
    result = run(compiled(project), raw, project.limits)
    assert result.ok, result.logs
    rename = {"deliveryOptionHandle": 'h"\\', "title": title + suffix}
    assert json.loads(result.output) == {"operations": [{"deliveryOptionRename": rename}]}


# ---------------------------------------------------------------------------------
# `fn init` starts from the examples' sources; rebuilding the examples reproduces the modules.


@pytest.mark.parametrize("language", ["rust", "c"])
def test_init_starts_from_the_examples_own_sources(language: str, tmp_path: Path) -> None:
    example = TEMPLATE_EXAMPLES[language]
    source = EXAMPLES[example.name]
    # For the example's target: the complete function, its fixtures and its query.
    started = create_project("Mine", example.target, language, tmp_path / "mine")
    assert started.starter == "example"
    for part in EXAMPLE_PARTS:
        for path in [source / part] if (source / part).is_file() else (source / part).rglob("*"):
            if path.is_file():
                relative = path.relative_to(source)
                assert (started.root / relative).read_bytes() == path.read_bytes(), relative
    # For any other target: the generic starter, with the files the language shares.
    other = "cart.validations.generate.run"
    generic = create_project("Other", other, language, tmp_path / "other")
    assert generic.starter == "generic"
    for shared in example.shared:
        for path in (
            [source / shared] if (source / shared).is_file() else (source / shared).rglob("*")
        ):
            relative = path.relative_to(source)
            assert (generic.root / relative).read_bytes() == path.read_bytes(), relative
    assert other in (generic.root / "cartwheel.toml").read_text()


@pytest.mark.slow
@pytest.mark.parametrize("example", list(EXAMPLES))
def test_rebuild_from_source_reproduces_the_committed_module(
    example: str, tmp_path: Path, compiled: Compiled
) -> None:
    committed = load_project(EXAMPLES[example])
    copy = tmp_path / example
    shutil.copytree(EXAMPLES[example], copy, ignore=shutil.ignore_patterns("target", "*.wasm"))
    rebuilt_project = load_project(copy)
    result = build(rebuilt_project, env={"CARGO_TARGET_DIR": str(tmp_path / "target")})
    assert result.within_limit, f"{result.module_bytes} > {result.limit_bytes}"
    rebuilt = rebuilt_project.read_wasm()
    rebuilt_module = load_module(rebuilt, limits=committed.limits, export=committed.export)
    committed_module = compiled(committed)
    for fixture in committed.fixtures():
        fresh = run(rebuilt_module, fixture.input_bytes(), committed.limits)
        check_fixture(committed, fixture, fresh)
        old = run(committed_module, fixture.input_bytes(), committed.limits)
        assert (fresh.output, fresh.error_code, fresh.fuel_consumed) == (
            old.output,
            old.error_code,
            old.fuel_consumed,
        )
    assert rebuilt_module.sha256 == committed_module.sha256, (
        f"{committed.wasm_path.name} is stale: rebuild it with `cartwheel fn build --path "
        f"examples/{example}` and commit it"
    )
