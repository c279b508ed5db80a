"""Compiled input-query plans against graphql-core executing the Strawberry schema.

Every case runs one query both ways on several snapshots and compares the bytes:
`InputQuery.execute` (compiled plan, orjson) must equal `orjson.dumps` of graphql-core's
`ExecutionResult.data` byte for byte, which implies the same keys in the same order.
A hypothesis test then generates snapshots and queries' variables.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from functions_sdk.apis import TARGETS, get_target
from functions_sdk.query import compile_query

ROOT = Path(__file__).resolve().parents[2]
SMALL = orjson.loads((ROOT / "examples/carts/small.json").read_bytes())
LARGE = orjson.loads((ROOT / "examples/carts/large.json").read_bytes())

DISCOUNT = "cart.lines.discounts.generate.run"
DELIVERY_DISCOUNT = "cart.delivery-options.discounts.generate.run"
DELIVERY = "cart.delivery-options.transform.run"
PAYMENT = "cart.payment-methods.transform.run"
VALIDATION = "cart.validations.generate.run"
TRANSFORM = "cart.transform.run"


def _edge_snapshot() -> dict[str, Any]:
    """Nulls and empties everywhere the format allows them."""
    s = copy.deepcopy(SMALL)
    s["cart"]["buyerIdentity"] = None
    s["cart"]["attributes"] = []
    s["cart"]["cost"]["totalTaxAmount"] = None
    s["cart"]["deliveryGroups"] = [
        {
            "id": "gid://cartwheel/CartDeliveryGroup/9",
            "deliveryAddress": None,
            "selectedDeliveryOption": {"handle": "no-such-option"},
            "deliveryOptions": [],
        }
    ]
    line = s["cart"]["lines"][0]
    line["cost"]["compareAtAmountPerQuantity"] = None
    line["merchandise"]["sku"] = None
    line["merchandise"]["title"] = None
    line["merchandise"]["product"].update(
        vendor=None, productType=None, tags=[], collectionIds=[], metafields=[]
    )
    big = "x" * 10_001
    line["merchandise"]["metafields"] = [
        {"namespace": "custom", "key": "big", "type": "single_line_text_field", "value": big}
    ]
    s["paymentMethods"] = []
    s["enteredDiscountCodes"] = []
    s["triggeringDiscountCode"] = "SPRING"
    s["shop"]["metafields"] = []
    return s


def _guest_snapshot() -> dict[str, Any]:
    s = copy.deepcopy(SMALL)
    s["cart"]["buyerIdentity"] = {
        "email": None,
        "phone": None,
        "isAuthenticated": False,
        "customer": None,
    }
    s["cart"]["lines"] = []
    del s["triggeringDiscountCode"]
    return s


SNAPSHOTS = {"small": SMALL, "large": LARGE, "edge": _edge_snapshot(), "guest": _guest_snapshot()}

OWNER = {
    "id": "gid://cartwheel/Discount/7",
    "discountClasses": ["PRODUCT", "ORDER"],
    "metafields": [
        {
            "namespace": "cartwheel",
            "key": "function-configuration",
            "type": "json",
            "value": '{"percentage": 10, "tiers": [{"min": "100.00", "pct": 5}]}',
        },
        {"namespace": "$app", "key": "limit", "type": "number_integer", "value": "3"},
        {"namespace": "$app", "key": "enabled", "type": "boolean", "value": "true"},
        {"namespace": "$app", "key": "rate", "type": "number_decimal", "value": "0.125"},
        {
            "namespace": "$app",
            "key": "codes",
            "type": "list.single_line_text_field",
            "value": '["A", "B"]',
        },
        {"namespace": "$app", "key": "broken", "type": "json", "value": "{not json"},
    ],
}

MONEY = "{ amount currencyCode }"

# (id, target, query, variables)
CASES: list[tuple[str, str, str, dict[str, Any] | None]] = [
    ("line-ids", DISCOUNT, "{ cart { lines { id quantity } } }", None),
    (
        "line-cost",
        DISCOUNT,
        f"""{{ cart {{ lines {{ cost {{ amountPerQuantity {MONEY} compareAtAmountPerQuantity
        {MONEY} subtotalAmount {MONEY} totalAmount {MONEY} }} }} }} }}""",
        None,
    ),
    (
        "variant-fields",
        DISCOUNT,
        """{ cart { lines { merchandise { __typename ... on ProductVariant {
        id sku title requiresShipping } } } } }""",
        None,
    ),
    (
        "product-fields",
        DISCOUNT,
        """{ cart { lines { merchandise { ... on ProductVariant { product {
        id handle title vendor productType isGiftCard } } } } } }""",
        None,
    ),
    (
        "tags-and-collections",
        DISCOUNT,
        """{ cart { lines { merchandise { ... on ProductVariant { product {
        hasAnyTag(tags: ["sale", "gift"]) hasTags(tags: ["sale", "gift", "sale"]) { tag hasTag }
        inAnyCollection(ids: ["gid://cartwheel/Collection/5"])
        inCollections(ids: ["gid://cartwheel/Collection/5", "gid://cartwheel/Collection/2"])
        { collectionId isMember } } } } } } }""",
        None,
    ),
    (
        "tests-with-defaults",
        DISCOUNT,
        """{ cart { lines { merchandise { ... on ProductVariant { product {
        hasAnyTag hasTags { tag } inAnyCollection inCollections { isMember } } } } } } }""",
        None,
    ),
    (
        "metafields-everywhere",
        DISCOUNT,
        """{ cart { lines { merchandise { ... on ProductVariant {
        metafield(namespace: "custom", key: "material") { value type }
        big: metafield(namespace: "custom", key: "big") { value }
        product { metafield(namespace: "custom", key: "bundle") { value jsonValue } } } } } }
        shop { metafield(namespace: "cartwheel", key: "loyalty") { jsonValue } } }""",
        None,
    ),
    (
        "json-values-by-type",
        DISCOUNT,
        """{ discount { a: metafield(namespace: "cartwheel", key: "function-configuration")
        { jsonValue } b: metafield(key: "limit") { jsonValue type }
        c: metafield(key: "enabled") { jsonValue } d: metafield(key: "rate") { jsonValue }
        e: metafield(key: "codes") { jsonValue } f: metafield(key: "broken") { jsonValue }
        g: metafield(key: "missing") { jsonValue } } }""",
        None,
    ),
    (
        "line-attribute",
        DISCOUNT,
        """{ cart { lines { attribute(key: "gift_message") { key value }
        other: attribute(key: "nope") { value } } attribute(key: "channel") { key value }
        referral: attribute(key: "referral") { value } } }""",
        None,
    ),
    (
        "buyer-identity",
        DISCOUNT,
        f"""{{ cart {{ buyerIdentity {{ email phone isAuthenticated customer {{ id email
        displayName numberOfOrders amountSpent {MONEY} }} }} }} }}""",
        None,
    ),
    (
        "customer-tags-metafield",
        DISCOUNT,
        """{ cart { buyerIdentity { customer { hasAnyTag(tags: ["vip"])
        hasTags(tags: ["vip", "b2b"]) { hasTag tag }
        tier: metafield(namespace: "custom", key: "tier") { value }
        points: metafield(namespace: "custom", key: "points") { jsonValue } } } } }""",
        None,
    ),
    (
        "cart-cost",
        DISCOUNT,
        f"""{{ cart {{ cost {{ subtotalAmount {MONEY} totalAmount {MONEY}
        totalTaxAmount {MONEY} }} }} }}""",
        None,
    ),
    (
        "delivery-groups",
        DELIVERY,
        """{ cart { deliveryGroups { id deliveryAddress { countryCode provinceCode city zip }
        selectedDeliveryOption { handle title } deliveryOptions { handle title
        cost { amount } deliveryMethodType } } } }""",
        None,
    ),
    (
        "delivery-owner",
        DELIVERY,
        """{ deliveryCustomization { metafield(namespace: "cartwheel",
        key: "function-configuration") { jsonValue } } }""",
        None,
    ),
    (
        "payment-methods",
        PAYMENT,
        """{ paymentMethods { id name __typename } paymentCustomization {
        metafield(key: "limit") { value } } cart { cost { totalAmount { amount } } } }""",
        None,
    ),
    ("validation-owner", VALIDATION, '{ validation { metafield(key: "limit") { value } } }', None),
    (
        "transform-owner",
        TRANSFORM,
        """{ cartTransform { metafield(key: "codes") { jsonValue } } cart { lines { id
        merchandise { ... on ProductVariant { id } } } } }""",
        None,
    ),
    (
        "discount-root",
        DISCOUNT,
        """{ discount { discountClasses } enteredDiscountCodes { code rejectable }
        triggeringDiscountCode presentmentCurrencyRate }""",
        None,
    ),
    (
        "delivery-discount-root",
        DELIVERY_DISCOUNT,
        """{ discount { discountClasses } cart { deliveryGroups { deliveryOptions { handle
        cost { amount currencyCode } } } } }""",
        None,
    ),
    (
        "shop-localization",
        DISCOUNT,
        """{ shop { localTime { date } } localization { country { isoCode }
        language { isoCode } } }""",
        None,
    ),
    (
        "aliases",
        DISCOUNT,
        """{ c: cart { ls: lines { lineId: id q: quantity q2: quantity
        price: cost { each: amountPerQuantity { amount } } } } }""",
        None,
    ),
    (
        "inline-fragments-merge",
        DISCOUNT,
        """{ cart { lines { id ... on CartLine { quantity id } merchandise { ... on
        ProductVariant { id } ... on ProductVariant { sku product { id } } ... on CustomProduct
        { title } } } } }""",
        None,
    ),
    (
        "named-fragments",
        DISCOUNT,
        """query Input { cart { lines { ...Line } } }
        fragment Line on CartLine { id cost { ...Money } merchandise { ...Variant } }
        fragment Money on CartLineCost { totalAmount { amount } }
        fragment Variant on ProductVariant { id product { ...Product } }
        fragment Product on Product { handle ...Product2 }
        fragment Product2 on Product { title handle }""",
        None,
    ),
    (
        "fragment-on-union",
        DISCOUNT,
        """{ cart { lines { merchandise { ...M } } } }
        fragment M on Merchandise { __typename ... on ProductVariant { title } }""",
        None,
    ),
    (
        "typename-everywhere",
        DISCOUNT,
        """{ __typename cart { __typename lines { __typename cost { __typename } merchandise {
        __typename } } } discount { __typename } shop { __typename localTime { __typename } } }""",
        None,
    ),
    (
        "variables",
        DISCOUNT,
        """query Input($tags: [String!], $ids: [ID!]!, $key: String! = "tier") {
        cart { lines { merchandise { ... on ProductVariant { product { hasAnyTag(tags: $tags)
        hasTags(tags: $tags) { tag hasTag } inAnyCollection(ids: $ids) inCollections(ids: $ids)
        { collectionId isMember } } } } } buyerIdentity { customer {
        metafield(namespace: "custom", key: $key) { value } } } } }""",
        {"tags": ["sale"], "ids": ["gid://cartwheel/Collection/1", "gid://cartwheel/Collection/8"]},
    ),
    (
        "variables-null-and-missing",
        DISCOUNT,
        """query Input($tags: [String!], $ids: [ID!]) { cart { lines { merchandise { ... on
        ProductVariant { product { hasAnyTag(tags: $tags) inCollections(ids: $ids) { isMember }
        } } } } } }""",
        {"tags": None},
    ),
    (
        "variable-coerced-id",
        DISCOUNT,
        """query Input($ids: [ID!]) { cart { lines { merchandise { ... on ProductVariant {
        product { inCollections(ids: $ids) { collectionId isMember } } } } } } }""",
        {"ids": "gid://cartwheel/Collection/5"},
    ),
    (
        "skip-include",
        DISCOUNT,
        """query Input($withCost: Boolean!, $skipId: Boolean = false) { cart { lines {
        id @skip(if: $skipId) quantity @include(if: false) cost @include(if: $withCost)
        { totalAmount { amount } } ... on CartLine @skip(if: true) { attribute(key: "x")
        { value } } } } }""",
        {"withCost": True, "skipId": True},
    ),
    (
        "duplicate-keys-merge",
        DISCOUNT,
        """{ cart { lines { cost { totalAmount { amount } } cost { totalAmount { currencyCode }
        subtotalAmount { amount } } } } }""",
        None,
    ),
    (
        "empty-lists",
        PAYMENT,
        """{ paymentMethods { name } cart { lines { id } deliveryGroups { deliveryOptions {
        handle } } } }""",
        None,
    ),
    (
        "discount-function-example",
        DISCOUNT,
        (ROOT / "examples/discount-function/input.graphql").read_text(),
        {"excludedCollectionIds": ["gid://cartwheel/Collection/7"], "vipTags": ["vip"]},
    ),
    (
        "delivery-customization-example",
        DELIVERY,
        (ROOT / "examples/delivery-customization/input.graphql").read_text(),
        None,
    ),
    (
        "benchmark-query",
        DISCOUNT,
        """{ cart { lines { id quantity cost { subtotalAmount { amount currencyCode }
        totalAmount { amount } } merchandise { __typename ... on ProductVariant { id sku
        product { id handle productType } } } } } }""",
        None,
    ),
]


@pytest.mark.parametrize(
    ("target", "text", "variables"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
@pytest.mark.parametrize("snapshot", list(SNAPSHOTS), ids=list(SNAPSHOTS))
def test_compiled_plan_is_byte_identical_to_graphql_core(
    target: str, text: str, variables: dict[str, Any] | None, snapshot: str
) -> None:
    query = compile_query(get_target(target), text)
    snap = SNAPSHOTS[snapshot]
    compiled = query.execute(snap, owner=OWNER, variables=variables)
    reference = query.execute_reference(snap, owner=OWNER, variables=variables)
    assert compiled == reference
    assert orjson.loads(compiled)  # a non-empty JSON object


def test_cases_cover_every_field_of_every_input_schema() -> None:
    from graphql import GraphQLObjectType, parse, visit
    from graphql.language import Visitor
    from graphql.utilities import TypeInfo, TypeInfoVisitor

    seen: set[str] = set()

    class Record(Visitor):
        def __init__(self, info: TypeInfo) -> None:
            super().__init__()
            self.info = info

        def enter_field(self, node: Any, *_: Any) -> None:
            parent = self.info.get_parent_type()
            if parent is not None:
                seen.add(f"{parent.name}.{node.name.value}")

    for _, target, text, _ in CASES:
        schema = get_target(target).graphql_schema
        info = TypeInfo(schema)
        visit(parse(text), TypeInfoVisitor(info, Record(info)))

    every: set[str] = set()
    for target in TARGETS:
        for type_ in target.graphql_schema.type_map.values():
            if isinstance(type_, GraphQLObjectType) and not type_.name.startswith("__"):
                every |= {f"{type_.name}.{f}" for f in type_.fields}
    # CustomProduct never occurs in a snapshot; its fields are selected but unreachable.
    assert every - seen <= {"CustomProduct.requiresShipping", "CustomProduct.isGiftCard"}


def test_no_owner_reads_as_an_owner_without_configuration() -> None:
    query = compile_query(
        get_target(DISCOUNT), '{ discount { discountClasses metafield(key: "x") { value } } }'
    )
    assert query.execute(SMALL) == query.execute_reference(SMALL)
    assert orjson.loads(query.execute(SMALL)) == {
        "discount": {"discountClasses": [], "metafield": None}
    }


def test_plans_are_cached_per_variable_values() -> None:
    query = compile_query(
        get_target(DISCOUNT),
        "query Q($t: [String!]) { cart { buyerIdentity { customer { hasAnyTag(tags: $t) } } } }",
    )
    vip = query.plan({"t": ["vip"]})
    assert query.plan({"t": ["vip"]}) is vip
    assert query.plan({"t": ["b2b"]}) is not vip
    customer = lambda v: orjson.loads(query.execute(SMALL, variables=v))["cart"]["buyerIdentity"]  # noqa: E731
    assert customer({"t": ["vip"]}) == {"customer": {"hasAnyTag": True}}
    assert customer({"t": ["b2b"]}) == {"customer": {"hasAnyTag": False}}


# -- generated snapshots ---------------------------------------------------------------

_text = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
_opt_text = st.none() | _text
_amount = st.decimals(min_value=0, max_value=10_000, places=2).map(str)
_money = st.builds(
    lambda a, c: {"amount": a, "currencyCode": c}, _amount, st.sampled_from(["USD", "CAD", "EUR"])
)
_tag = st.sampled_from(["sale", "gift", "vip", "new", "b2b", "ümlaut"])
_collection = st.sampled_from([f"gid://cartwheel/Collection/{n}" for n in range(1, 6)])
_metafield_type = st.sampled_from(
    [
        "json",
        "single_line_text_field",
        "number_integer",
        "number_decimal",
        "boolean",
        "list.single_line_text_field",
    ]
)


@st.composite
def _metafield(draw: st.DrawFn) -> dict[str, str]:
    type_ = draw(_metafield_type)
    value = {
        "json": st.sampled_from(['{"a": 1}', "[1, 2]", "null", "oops"]),
        "list.single_line_text_field": st.sampled_from(['["x"]', "[]"]),
        "number_integer": st.integers(-1000, 1000).map(str),
        "number_decimal": _amount,
        "boolean": st.sampled_from(["true", "false", "maybe"]),
    }.get(type_, _text)
    return {
        "namespace": draw(st.sampled_from(["custom", "$app"])),
        "key": draw(st.sampled_from(["a", "b"])),
        "type": type_,
        "value": draw(value),
    }


_metafields = st.lists(_metafield(), max_size=3)
_attributes = st.lists(
    st.builds(lambda k, v: {"key": k, "value": v}, st.sampled_from(["x", "y"]), _opt_text),
    max_size=2,
)


@st.composite
def _line(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 10_000))
    return {
        "id": f"gid://cartwheel/CartLine/{n}",
        "quantity": draw(st.integers(1, 50)),
        "attributes": draw(_attributes),
        "cost": {
            "amountPerQuantity": draw(_money),
            "compareAtAmountPerQuantity": draw(st.none() | _money),
            "subtotalAmount": draw(_money),
            "totalAmount": draw(_money),
        },
        "merchandise": {
            "__typename": "ProductVariant",
            "id": f"gid://cartwheel/ProductVariant/{n}",
            "sku": draw(_opt_text),
            "title": draw(_opt_text),
            "requiresShipping": draw(st.booleans()),
            "metafields": draw(_metafields),
            "product": {
                "id": f"gid://cartwheel/Product/{n}",
                "handle": draw(_text),
                "title": draw(_text),
                "vendor": draw(_opt_text),
                "productType": draw(_opt_text),
                "isGiftCard": draw(st.booleans()),
                "tags": draw(st.lists(_tag, max_size=3)),
                "collectionIds": draw(st.lists(_collection, max_size=3)),
                "metafields": draw(_metafields),
            },
        },
    }


_option = st.builds(
    lambda h, t, c, m: {"handle": h, "title": t, "cost": c, "deliveryMethodType": m},
    st.sampled_from(["std", "exp", "pick"]),
    _opt_text,
    _money,
    st.sampled_from(["SHIPPING", "LOCAL", "PICK_UP", "NONE", "RETAIL", "PICKUP_POINT"]),
)


@st.composite
def _snapshot(draw: st.DrawFn) -> dict[str, Any]:
    customer = st.builds(
        lambda e, n, o, a, t, m: {
            "id": "gid://cartwheel/Customer/1",
            "email": e,
            "displayName": n,
            "numberOfOrders": o,
            "amountSpent": a,
            "tags": t,
            "metafields": m,
        },
        _opt_text,
        _text,
        st.integers(0, 500),
        _money,
        st.lists(_tag, max_size=3),
        _metafields,
    )
    buyer = st.none() | st.builds(
        lambda e, p, a, c: {"email": e, "phone": p, "isAuthenticated": a, "customer": c},
        _opt_text,
        _opt_text,
        st.booleans(),
        st.none() | customer,
    )
    groups = st.lists(
        st.builds(
            lambda i, addr, sel, opts: {
                "id": f"gid://cartwheel/CartDeliveryGroup/{i}",
                "deliveryAddress": addr,
                "selectedDeliveryOption": sel,
                "deliveryOptions": opts,
            },
            st.integers(1, 9),
            st.none()
            | st.builds(
                lambda c, p, city, z: {"countryCode": c, "provinceCode": p, "city": city, "zip": z},
                st.none() | st.sampled_from(["CA", "US"]),
                _opt_text,
                _opt_text,
                _opt_text,
            ),
            st.none() | st.builds(lambda h: {"handle": h}, st.sampled_from(["std", "exp", "x"])),
            st.lists(_option, max_size=3),
        ),
        max_size=2,
    )
    snapshot = copy.deepcopy(SMALL)
    snapshot["cart"].update(
        lines=draw(st.lists(_line(), max_size=6)),
        buyerIdentity=draw(buyer),
        attributes=draw(_attributes),
        deliveryGroups=draw(groups),
        cost={
            "subtotalAmount": draw(_money),
            "totalAmount": draw(_money),
            "totalTaxAmount": draw(st.none() | _money),
        },
    )
    snapshot["shop"]["metafields"] = draw(_metafields)
    snapshot["paymentMethods"] = draw(
        st.lists(
            st.builds(
                lambda n: {"id": "gid://cartwheel/PaymentCustomizationPaymentMethod/1", "name": n},
                _text,
            ),
            max_size=3,
        )
    )
    snapshot["enteredDiscountCodes"] = draw(
        st.lists(
            st.builds(lambda c, r: {"code": c, "rejectable": r}, _text, st.booleans()), max_size=2
        )
    )
    snapshot["triggeringDiscountCode"] = draw(_opt_text)
    return snapshot


_GENERATED = [
    compile_query(
        get_target(DISCOUNT),
        f"""query Input($tags: [String!], $ids: [ID!]) {{
      __typename
      cart {{ lines {{ id quantity attribute(key: "y") {{ value }}
          cost {{ amountPerQuantity {MONEY} compareAtAmountPerQuantity {{ amount }} }}
          merchandise {{ __typename ... on ProductVariant {{ sku title requiresShipping
            product {{ vendor productType isGiftCard hasAnyTag(tags: $tags)
              hasTags(tags: $tags) {{ tag hasTag }} inAnyCollection(ids: $ids)
              inCollections(ids: $ids) {{ collectionId isMember }} }} }} }} }} }}
    }}""",
    ),
    compile_query(
        get_target(DISCOUNT),
        """query Input($tags: [String!]) {
      cart { attribute(key: "x") { key value }
        lines { merchandise { ... on ProductVariant {
          metafield(namespace: "custom", key: "a") { type value jsonValue }
          product { metafield(key: "b") { jsonValue } } } } }
        buyerIdentity { email isAuthenticated customer { displayName numberOfOrders
          hasAnyTag(tags: $tags) } }
        cost { totalTaxAmount { amount } } }
      triggeringDiscountCode
    }""",
    ),
    compile_query(
        get_target(PAYMENT),
        """{ paymentMethods { id name } shop { metafield(key: "a") { jsonValue } }
      cart { deliveryGroups { deliveryAddress { countryCode city }
        selectedDeliveryOption { handle deliveryMethodType } deliveryOptions { title } } } }""",
    ),
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    snapshot=_snapshot(),
    tags=st.none() | st.lists(_tag, max_size=4),
    ids=st.none() | st.lists(_collection, max_size=4),
)
def test_generated_snapshots_match_graphql_core(
    snapshot: dict[str, Any], tags: list[str] | None, ids: list[str] | None
) -> None:
    for query in _GENERATED:
        variables = {
            k: v for k, v in {"tags": tags, "ids": ids}.items() if k in query.variable_names
        }
        compiled = query.execute(snapshot, owner=OWNER, variables=variables)
        assert compiled == query.execute_reference(snapshot, owner=OWNER, variables=variables)


def test_execute_restores_the_garbage_collector_setting() -> None:
    import gc

    query = compile_query(get_target(DISCOUNT), "{ cart { lines { id } } }")
    assert gc.isenabled()
    query.execute(LARGE)
    assert gc.isenabled()
    gc.disable()
    try:
        query.execute(LARGE)
        assert not gc.isenabled()
    finally:
        gc.enable()
    with pytest.raises(KeyError):
        query.execute({"cart": {}})  # a malformed snapshot fails the build...
    assert gc.isenabled()  # ...and the collector is back on


# -- generated queries -------------------------------------------------------------------

_ARGUMENTS: dict[str, list[str]] = {
    "metafield": [
        '(namespace: "custom", key: "a")',
        '(key: "b")',
        '(namespace: "custom", key: "material")',
        '(namespace: "cartwheel", key: "function-configuration")',
    ],
    "attribute": ['(key: "x")', '(key: "gift_message")', '(key: "channel")'],
    "hasAnyTag": ["", '(tags: ["sale", "vip"])', "(tags: [])", "(tags: null)"],
    "hasTags": ["", '(tags: ["vip", "gift", "vip"])'],
    "inAnyCollection": ['(ids: ["gid://cartwheel/Collection/2"])', ""],
    "inCollections": ['(ids: ["gid://cartwheel/Collection/2", "gid://cartwheel/Collection/5"])'],
}


@st.composite
def _query_text(draw: st.DrawFn, target_name: str) -> str:
    from graphql import GraphQLObjectType, GraphQLUnionType, get_named_type

    schema = get_target(target_name).graphql_schema
    aliases = iter(range(10_000))

    def selection(type_: GraphQLObjectType, depth: int) -> str:
        names = draw(
            st.lists(st.sampled_from(sorted(type_.fields)), min_size=1, max_size=3, unique=True)
        )
        parts = []
        for name in names:
            named = get_named_type(type_.fields[name].type)
            args = draw(st.sampled_from(_ARGUMENTS.get(name, [""])))
            alias = f"a{next(aliases)}: " if draw(st.booleans()) else ""
            if isinstance(named, GraphQLUnionType):
                variant = schema.get_type("ProductVariant")
                assert isinstance(variant, GraphQLObjectType)
                sub = "{ __typename ... on ProductVariant " + selection(variant, depth + 1) + " }"
            elif isinstance(named, GraphQLObjectType):
                if depth > 4:
                    continue
                sub = selection(named, depth + 1)
            else:
                sub = ""
            parts.append(f"{alias}{name}{args} {sub}")
        if draw(st.booleans()):
            parts.append("__typename")
        if len(parts) > 1 and draw(st.booleans()):
            # Move the tail into an inline fragment on the same type.
            cut = draw(st.integers(1, len(parts) - 1))
            parts[cut:] = ["... on " + type_.name + " { " + " ".join(parts[cut:]) + " }"]
        return "{ " + " ".join(parts or ["__typename"]) + " }"

    root = schema.query_type
    assert root is not None
    return selection(root, 0)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), target=st.sampled_from([t.name for t in TARGETS]))
def test_generated_queries_match_graphql_core(data: st.DataObject, target: str) -> None:
    from hypothesis import assume

    from functions_sdk.query import InvalidInputQueryError

    text = data.draw(_query_text(target))
    try:
        query = compile_query(get_target(target), text)
    except InvalidInputQueryError as e:
        assume(e.code != "INPUT_QUERY_TOO_COSTLY")
        raise
    for snapshot in (SNAPSHOTS["small"], SNAPSHOTS["edge"], data.draw(_snapshot())):
        compiled = query.execute(snapshot, owner=OWNER)
        assert compiled == query.execute_reference(snapshot, owner=OWNER), text


def test_concurrent_executions_with_different_variables() -> None:
    from concurrent.futures import ThreadPoolExecutor

    query = compile_query(
        get_target(DISCOUNT),
        "query Q($t: [String!]) { cart { lines { merchandise { ... on ProductVariant {"
        " product { hasTags(tags: $t) { tag hasTag } } } } } } }",
    )
    tag_sets = [[f"t{i}", "sale"] for i in range(80)]
    expected = {
        tuple(tags): query.execute_reference(SMALL, variables={"t": tags}) for tags in tag_sets
    }

    def run(tags: list[str]) -> tuple[tuple[str, ...], bytes]:
        return tuple(tags), query.execute(SMALL, variables={"t": tags})

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(run, tag_sets * 3))
    assert all(expected[tags] == output for tags, output in results)
    import gc

    assert gc.isenabled()  # each execution restored the collector it paused
