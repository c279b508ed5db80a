"""Apply: turn validated function operations into a priced checkout.

The pipeline (`cartwheel.checkout`) feeds this module one function's operations at a
time, in checkout order, on a `CheckoutState` built from the cart snapshot:

- cart transform operations (`lineExpand`, `linesMerge`, `lineUpdate`) change the lines
  at once, before any discount function runs;
- discount operations are *collected* (`collect_discounts`): each function's own
  selection strategy is resolved right away (FIRST, MAXIMUM; ALL for delivery), but which
  discounts finally apply is decided once every discount function has run, because
  combinations cross targets (a line discount may or may not combine with a shipping
  discount);
- delivery and payment customizations hide, rename and move options, in order;
- validation errors are recorded and block the checkout.

`finalize` then resolves combinations, allocates every discount to lines in minor units
and prices the checkout. The combination rule is written down in docs/CHECKOUT.md
("Which discounts apply"); in short: the applied set is the compatible set of discounts
with the largest total savings for the buyer, ties going to the discounts that come
first in checkout order.

Amounts are `Decimal` throughout and rounded to the currency's minor unit (`money`).
Nothing here raises for a guest's mistake: an operation naming a line or option that
does not exist is skipped and reported in `CheckoutState.notes`.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any

from cartwheel.money import (
    ZERO,
    allocate,
    from_money,
    percentage_of,
    quantize,
    to_money,
)
from functions_sdk.apis.outputs import (
    CartLineMinimumQuantity,
    CartLineMinimumSubtotal,
    CartLineTarget,
    DeliveryDiscountCandidate,
    DeliveryDiscountsAddOperation,
    DeliveryGroupTarget,
    DeliveryOptionHideOperation,
    DeliveryOptionMoveOperation,
    DeliveryOptionRenameOperation,
    DeliveryOptionTarget,
    EnteredDiscountCodesAcceptOperation,
    LineExpandOperation,
    LinesMergeOperation,
    LineUpdateOperation,
    Operation,
    OrderDiscountCandidate,
    OrderDiscountsAddOperation,
    OrderMinimumSubtotal,
    OrderSubtotalTarget,
    PaymentMethodHideOperation,
    PaymentMethodMoveOperation,
    PaymentMethodRenameOperation,
    Percentage,
    PriceAdjustment,
    ProductDiscountCandidate,
    ProductDiscountCandidateFixedAmount,
    ProductDiscountsAddOperation,
    ValidationAddOperation,
)
from functions_sdk.snapshot import CartLine, Snapshot

MAX_COMBINATIONS_EXAMINED = 4096
"""Bound on the compatible discount sets compared by `finalize`. Real shops have a
handful of discounts; past this bound the search keeps the best set found so far."""


class DiscountClass(StrEnum):
    """What a discount reduces: line prices, the order subtotal or shipping."""

    PRODUCT = "PRODUCT"
    ORDER = "ORDER"
    SHIPPING = "SHIPPING"


Candidate = ProductDiscountCandidate | OrderDiscountCandidate | DeliveryDiscountCandidate
"""A discount candidate of any class (a function's offer, before selection)."""


class CodeStatus(StrEnum):
    """Outcome of one entered discount code."""

    APPLIED = "APPLIED"
    NOT_FOUND = "NOT_FOUND"
    """No discount has this code and no function accepted it."""
    NOT_APPLICABLE = "NOT_APPLICABLE"
    """Its discount ran but produced nothing for this cart (or failed)."""
    NOT_COMBINABLE = "NOT_COMBINABLE"
    """Its discount lost to a better set of discounts it does not combine with."""


# --------------------------------------------------------------------------------------
# State
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CombinesWith:
    """Which classes of other discounts a discount may be applied together with.
    Shopify's defaults: none."""

    order_discounts: bool = False
    product_discounts: bool = False
    shipping_discounts: bool = False

    def allows(self, cls: DiscountClass) -> bool:
        """True if a discount of class `cls` may apply beside this one."""
        if cls is DiscountClass.ORDER:
            return self.order_discounts
        if cls is DiscountClass.PRODUCT:
            return self.product_discounts
        return self.shipping_discounts


@dataclass(frozen=True, slots=True)
class DiscountSource:
    """The discount (function instance) behind a set of operations."""

    instance_id: str
    title: str
    position: int
    """Checkout order of the instance; earlier wins ties."""
    classes: frozenset[DiscountClass] = frozenset(DiscountClass)
    combines_with: CombinesWith = CombinesWith()
    code: str | None = None
    """The discount code that triggered it; None for an automatic discount."""


@dataclass(slots=True)
class Line:
    """A cart line being priced."""

    id: str
    quantity: int
    unit_price: Decimal
    merchandise: dict[str, Any]
    attributes: list[dict[str, Any]]
    title: str | None = None
    compare_at: Decimal | None = None
    components: list[str] = field(default_factory=list)
    """Ids of the original lines merged into this one (linesMerge) or the parent line
    it was expanded from (lineExpand)."""

    @property
    def subtotal(self) -> Decimal:
        return self.unit_price * self.quantity


@dataclass(slots=True)
class Option:
    """A delivery option or a payment method, in display order."""

    key: str
    title: str
    cost: Decimal = ZERO
    method_type: str | None = None


@dataclass(slots=True)
class Group:
    """A delivery group: its options in display order and the buyer's selection."""

    id: str
    options: list[Option]
    selected: str | None
    address: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Application:
    """One candidate a discount function chose, before combination is resolved."""

    source: DiscountSource
    discount_class: DiscountClass
    candidate: Candidate


@dataclass(frozen=True, slots=True)
class ValidationError:
    message: str
    target: str
    instance_id: str


@dataclass(slots=True)
class CheckoutState:
    """Everything the functions of one checkout have changed so far."""

    currency: str
    lines: list[Line]
    groups: list[Group]
    payment_methods: list[Option]
    entered_codes: list[str]
    applications: list[Application] = field(default_factory=list)
    accepted_codes: dict[str, set[str]] = field(default_factory=dict)
    """instance id → codes (casefolded) accepted through enteredDiscountCodesAccept."""
    triggered: dict[str, DiscountSource] = field(default_factory=dict)
    """instance id → the source of every discount that ran (applied or not)."""
    errors: list[ValidationError] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    lines_changed: bool = False
    options_changed: bool = False

    @classmethod
    def from_snapshot(cls, snapshot: Snapshot) -> CheckoutState:
        """Build the state of a checkout from its cart snapshot."""
        cart = snapshot["cart"]
        currency = cart["cost"]["subtotalAmount"]["currencyCode"]
        lines = [_line_from_snapshot(line) for line in cart["lines"]]
        groups = [
            Group(
                id=g["id"],
                options=[
                    Option(
                        key=o["handle"],
                        title=o["title"] or o["handle"],
                        cost=from_money(o["cost"]),
                        method_type=o["deliveryMethodType"],
                    )
                    for o in g["deliveryOptions"]
                ],
                selected=(
                    g["selectedDeliveryOption"]["handle"] if g["selectedDeliveryOption"] else None
                ),
                address=dict(g["deliveryAddress"]) if g["deliveryAddress"] else None,
            )
            for g in cart["deliveryGroups"]
        ]
        methods = [Option(key=m["id"], title=m["name"]) for m in snapshot["paymentMethods"]]
        codes = [c["code"] for c in snapshot["enteredDiscountCodes"]]
        return cls(currency, lines, groups, methods, codes)

    def line(self, line_id: str) -> Line | None:
        for line in self.lines:
            if line.id == line_id:
                return line
        return None

    def view(self, snapshot: Snapshot) -> Snapshot:
        """`snapshot` with the lines and delivery options as the functions so far left
        them, for the input queries of the targets that follow. Returns `snapshot`
        itself when nothing changed (the common case: no copy on the hot path)."""
        if not (self.lines_changed or self.options_changed):
            return snapshot
        view: Snapshot = copy.copy(snapshot)
        cart = dict(snapshot["cart"])
        if self.lines_changed:
            cart["lines"] = [_line_to_snapshot(line, self.currency) for line in self.lines]
            subtotal = sum((line.subtotal for line in self.lines), ZERO)
            cart["cost"] = {
                **snapshot["cart"]["cost"],
                "subtotalAmount": to_money(subtotal, self.currency),
            }
        if self.options_changed:
            cart["deliveryGroups"] = [
                {
                    "id": g.id,
                    "deliveryAddress": g.address,
                    "selectedDeliveryOption": {"handle": g.selected} if g.selected else None,
                    "deliveryOptions": [
                        {
                            "handle": o.key,
                            "title": o.title,
                            "cost": to_money(o.cost, self.currency),
                            "deliveryMethodType": o.method_type or "SHIPPING",
                        }
                        for o in g.options
                    ],
                }
                for g in self.groups
            ]
            view["paymentMethods"] = [{"id": m.key, "name": m.title} for m in self.payment_methods]
        view["cart"] = cart  # type: ignore[typeddict-item]
        return view


def _line_from_snapshot(line: CartLine) -> Line:
    cost = line["cost"]
    compare_at = cost["compareAtAmountPerQuantity"]
    merchandise: dict[str, Any] = dict(line["merchandise"])
    return Line(
        id=line["id"],
        quantity=line["quantity"],
        unit_price=from_money(cost["amountPerQuantity"]),
        merchandise=merchandise,
        attributes=[dict(a) for a in line["attributes"]],
        title=line["merchandise"]["title"] or line["merchandise"]["product"]["title"],
        compare_at=from_money(compare_at) if compare_at else None,
    )


def _line_to_snapshot(line: Line, currency: str) -> dict[str, Any]:
    return {
        "id": line.id,
        "quantity": line.quantity,
        "attributes": line.attributes,
        "cost": {
            "amountPerQuantity": to_money(line.unit_price, currency),
            "compareAtAmountPerQuantity": (
                to_money(line.compare_at, currency) if line.compare_at is not None else None
            ),
            "subtotalAmount": to_money(line.subtotal, currency),
            "totalAmount": to_money(line.subtotal, currency),
        },
        "merchandise": line.merchandise,
    }


# --------------------------------------------------------------------------------------
# Cart transform
# --------------------------------------------------------------------------------------


def apply_cart_transform(state: CheckoutState, ops: Iterable[Operation], instance_id: str) -> None:
    """Apply `lineExpand`, `linesMerge` and `lineUpdate` operations in order.

    Prices stay exact: an expanded line's total is shared by its components in
    proportion to their quantities (unless a component has a fixed unit price), a merged
    line costs the sum of its parts, and a `percentageDecrease` is rounded to the minor
    unit. An operation naming a line that is not (or no longer) in the cart is skipped.
    """
    for op in ops:
        if isinstance(op, LineUpdateOperation):
            _line_update(state, op, instance_id)
        elif isinstance(op, LineExpandOperation):
            _line_expand(state, op, instance_id)
        elif isinstance(op, LinesMergeOperation):
            _lines_merge(state, op, instance_id)


def _line_update(state: CheckoutState, op: LineUpdateOperation, instance_id: str) -> None:
    line = state.line(op.cart_line_id)
    if line is None:
        state.notes.append(f"{instance_id}: lineUpdate names unknown line {op.cart_line_id}")
        return
    if op.price is not None:
        line.unit_price = quantize(max(op.price.adjustment.amount, ZERO), state.currency)
    if op.title is not None:
        line.title = op.title
    state.lines_changed = True


def _decrease(amount: Decimal, price: PriceAdjustment | None, currency: str) -> Decimal:
    if price is None or price.percentage_decrease is None:
        return amount
    return amount - percentage_of(amount, price.percentage_decrease.value, currency)


def _line_expand(state: CheckoutState, op: LineExpandOperation, instance_id: str) -> None:
    parent = state.line(op.cart_line_id)
    items = op.expanded_cart_items
    if parent is None or not items:
        state.notes.append(f"{instance_id}: lineExpand names unknown line {op.cart_line_id}")
        return
    total = _decrease(parent.subtotal, op.price, state.currency)
    fixed_total = sum(
        (
            quantize(i.price.adjustment.amount, state.currency) * i.quantity * parent.quantity
            for i in items
            if i.price is not None
        ),
        ZERO,
    )
    # Components with a fixed price keep it; the others share what is left of the
    # parent's total in proportion to their quantities, allocated in minor units.
    free = [n for n, i in enumerate(items) if i.price is None]
    shares = allocate(
        max(total - fixed_total, ZERO), [Decimal(items[n].quantity) for n in free], state.currency
    )
    share_of = dict(zip(free, shares, strict=True))
    new_lines: list[Line] = []
    for n, item in enumerate(items):
        quantity = item.quantity * parent.quantity
        if item.price is not None:
            unit = quantize(item.price.adjustment.amount, state.currency)
        else:
            unit = share_of[n] / quantity
        attributes = list(parent.attributes)
        attributes += [{"key": a.key, "value": a.value} for a in item.attributes or ()]
        new_lines.append(
            Line(
                id=f"{parent.id}#{n}",
                quantity=quantity,
                unit_price=unit,
                merchandise={
                    **parent.merchandise,
                    "id": item.merchandise_id,
                    "sku": None,
                    "title": None,
                },
                attributes=attributes,
                title=op.title or parent.title,
                components=[parent.id],
            )
        )
    index = state.lines.index(parent)
    state.lines[index : index + 1] = new_lines
    state.lines_changed = True


def _lines_merge(state: CheckoutState, op: LinesMergeOperation, instance_id: str) -> None:
    parts = [(state.line(c.cart_line_id), c.quantity) for c in op.cart_lines]
    if not parts or any(line is None or qty > line.quantity for line, qty in parts):
        state.notes.append(f"{instance_id}: linesMerge names unknown lines or quantities")
        return
    found = [(line, qty) for line, qty in parts if line is not None]
    total = sum((line.unit_price * qty for line, qty in found), ZERO)
    first = found[0][0]
    merged = Line(
        id=f"{first.id}+merged",
        quantity=1,
        unit_price=_decrease(total, op.price, state.currency),
        merchandise={**first.merchandise, "id": op.parent_variant_id, "sku": None},
        attributes=[{"key": a.key, "value": a.value} for a in op.attributes or ()],
        title=op.title,
        components=[line.id for line, _ in found],
    )
    index = state.lines.index(first)
    for line, qty in found:
        line.quantity -= qty
    state.lines.insert(index, merged)
    state.lines = [line for line in state.lines if line.quantity > 0]
    state.lines_changed = True


# --------------------------------------------------------------------------------------
# Discounts: collection (per function) and resolution (per checkout)
# --------------------------------------------------------------------------------------


def collect_discounts(
    state: CheckoutState, ops: Iterable[Operation], source: DiscountSource
) -> None:
    """Record one discount function's operations.

    Its own selection strategy is resolved here: FIRST keeps the first candidate,
    MAXIMUM the candidate with the largest savings on the cart as it is now (ties: the
    earlier candidate), ALL every candidate. Operations of a class the discount does not
    have (`discountClasses`) are dropped, and so are candidates whose conditions do not
    hold or that are tied to a discount code (`associatedDiscountCode`) the function
    neither was triggered by nor accepted (`enteredDiscountCodesAccept`).
    """
    state.triggered[source.instance_id] = source
    ops = list(ops)
    accepted = state.accepted_codes.setdefault(source.instance_id, set())
    entered = {c.casefold() for c in state.entered_codes}
    for op in ops:
        if isinstance(op, EnteredDiscountCodesAcceptOperation):
            accepted.update(c.code.casefold() for c in op.codes if c.code.casefold() in entered)
    own = accepted | ({source.code.casefold()} if source.code else set())
    for op in ops:
        cls: DiscountClass
        if isinstance(op, ProductDiscountsAddOperation):
            cls = DiscountClass.PRODUCT
        elif isinstance(op, OrderDiscountsAddOperation):
            cls = DiscountClass.ORDER
        elif isinstance(op, DeliveryDiscountsAddOperation):
            cls = DiscountClass.SHIPPING
        else:
            continue
        if cls not in source.classes:
            state.notes.append(
                f"{source.instance_id}: {cls.value} discount dropped "
                "(not one of the discount's classes)"
            )
            continue
        candidates: list[Candidate] = [
            c
            for c in op.candidates
            if (
                c.associated_discount_code is None
                or c.associated_discount_code.code.casefold() in own
            )
            and _conditions_hold(state, c)
        ]
        if not candidates:
            continue
        strategy = op.selection_strategy.value
        if strategy == "FIRST":
            chosen = candidates[:1]
        elif strategy == "MAXIMUM":
            chosen = [max(candidates, key=lambda c: _standalone_savings(state, cls, c))]
        else:
            chosen = candidates
        state.applications.extend(Application(source, cls, c) for c in chosen)


def _conditions_hold(state: CheckoutState, candidate: Candidate) -> bool:
    """Whether an order candidate's `conditions` all hold on the cart as it is now."""
    if not isinstance(candidate, OrderDiscountCandidate) or not candidate.conditions:
        return True
    for condition in candidate.conditions:
        if isinstance(condition, CartLineMinimumQuantity):
            ids = set(condition.ids)
            quantity = sum(line.quantity for line in state.lines if line.id in ids)
            if quantity < condition.minimum_quantity:
                return False
        elif isinstance(condition, CartLineMinimumSubtotal):
            ids = set(condition.ids)
            amount = sum((line.subtotal for line in state.lines if line.id in ids), ZERO)
            if amount < condition.minimum_amount:
                return False
        elif isinstance(condition, OrderMinimumSubtotal):
            excluded = set(condition.excluded_cart_line_ids)
            amount = sum((ln.subtotal for ln in state.lines if ln.id not in excluded), ZERO)
            if amount < condition.minimum_amount:
                return False
    return True


def _line_base(line: Line, target: CartLineTarget) -> tuple[int, Decimal]:
    quantity = line.quantity if target.quantity is None else min(target.quantity, line.quantity)
    return quantity, line.unit_price * quantity


def _product_savings(state: CheckoutState, candidate: Candidate) -> dict[str, Decimal]:
    """Savings per line id of one product candidate, each capped at the line's amount."""
    bases: list[tuple[Line, int, Decimal]] = []
    for target in candidate.targets:
        if isinstance(target, CartLineTarget):
            line = state.line(target.id)
            if line is not None:
                quantity, base = _line_base(line, target)
                bases.append((line, quantity, base))
    value = candidate.value
    out: dict[str, Decimal] = {}
    if isinstance(value, Percentage):
        for line, _, base in bases:
            out[line.id] = percentage_of(base, value.value, state.currency)
    elif isinstance(value, ProductDiscountCandidateFixedAmount) and value.applies_to_each_item:
        for line, quantity, base in bases:
            out[line.id] = min(quantize(value.amount, state.currency) * quantity, base)
    else:
        total = min(quantize(value.amount, state.currency), sum((b for _, _, b in bases), ZERO))
        parts = allocate(total, [b for _, _, b in bases], state.currency)
        for (line, _, _), part in zip(bases, parts, strict=True):
            out[line.id] = part
    return out


def _order_base(
    state: CheckoutState, candidate: Candidate, line_discounts: dict[str, Decimal]
) -> dict[str, Decimal]:
    """Line id → amount the order candidate applies to (after product discounts)."""
    excluded: set[str] = set()
    for target in candidate.targets:
        if isinstance(target, OrderSubtotalTarget):
            excluded.update(target.excluded_cart_line_ids)
    return {
        line.id: line.subtotal - line_discounts.get(line.id, ZERO)
        for line in state.lines
        if line.id not in excluded and not excluded.intersection(line.components)
    }


def _order_amount(state: CheckoutState, candidate: Candidate, base: Decimal) -> Decimal:
    value = candidate.value
    if isinstance(value, Percentage):
        return percentage_of(base, value.value, state.currency)
    return min(quantize(value.amount, state.currency), base)


def _delivery_savings(state: CheckoutState, candidate: Candidate) -> dict[str, Decimal]:
    """Option handle → saving of one delivery candidate, capped at the option's cost.
    A delivery group target covers every option of the group (whichever is selected)."""
    handles = {t.handle for t in candidate.targets if isinstance(t, DeliveryOptionTarget)}
    groups = {t.id for t in candidate.targets if isinstance(t, DeliveryGroupTarget)}
    value = candidate.value
    out: dict[str, Decimal] = {}
    for group in state.groups:
        for option in group.options:
            if option.key in handles or group.id in groups:
                if isinstance(value, Percentage):
                    saving = percentage_of(option.cost, value.value, state.currency)
                else:
                    saving = min(quantize(value.amount, state.currency), option.cost)
                out[option.key] = saving
    return out


def _standalone_savings(state: CheckoutState, cls: DiscountClass, candidate: Candidate) -> Decimal:
    if cls is DiscountClass.PRODUCT:
        return sum(_product_savings(state, candidate).values(), ZERO)
    if cls is DiscountClass.ORDER:
        base = sum(_order_base(state, candidate, {}).values(), ZERO)
        return _order_amount(state, candidate, base)
    return max(_delivery_savings(state, candidate).values(), default=ZERO)


# --------------------------------------------------------------------------------------
# Delivery and payment customization, validation
# --------------------------------------------------------------------------------------


def apply_delivery_customization(
    state: CheckoutState, ops: Iterable[Operation], instance_id: str
) -> None:
    """Hide, rename and move delivery options by handle, in the order given. Moving
    places the option at `index` within its group (clamped). When the selected option is
    hidden the group falls back to its first visible option once customization is done."""
    for op in ops:
        if isinstance(op, DeliveryOptionHideOperation):
            change = _Change("hide", op.delivery_option_handle)
        elif isinstance(op, DeliveryOptionMoveOperation):
            change = _Change("move", op.delivery_option_handle, index=op.index)
        elif isinstance(op, DeliveryOptionRenameOperation):
            change = _Change("rename", op.delivery_option_handle, title=op.title)
        else:
            continue
        hit = False
        for group in state.groups:
            if _customize(group.options, change):
                hit = state.options_changed = True
                if change.kind == "hide" and group.selected == change.key:
                    group.selected = None  # resolved at finalize: first visible option
        if not hit:
            state.notes.append(f"{instance_id}: unknown delivery option {change.key}")


def apply_payment_customization(
    state: CheckoutState, ops: Iterable[Operation], instance_id: str
) -> None:
    """Hide, rename and move payment methods by id, in the order given. A hidden
    method is hidden from every placement."""
    for op in ops:
        if isinstance(op, PaymentMethodHideOperation):
            change = _Change("hide", op.payment_method_id)
        elif isinstance(op, PaymentMethodMoveOperation):
            change = _Change("move", op.payment_method_id, index=op.index)
        elif isinstance(op, PaymentMethodRenameOperation):
            change = _Change("rename", op.payment_method_id, title=op.name)
        else:
            continue
        if _customize(state.payment_methods, change):
            state.options_changed = True
        else:
            state.notes.append(f"{instance_id}: unknown payment method {change.key}")


@dataclass(frozen=True, slots=True)
class _Change:
    kind: str  # hide | move | rename
    key: str
    index: int = 0
    title: str = ""


def _customize(options: list[Option], change: _Change) -> bool:
    for i, option in enumerate(options):
        if option.key != change.key:
            continue
        if change.kind == "hide":
            del options[i]
        elif change.kind == "rename":
            option.title = change.title
        else:
            del options[i]
            options.insert(max(0, min(change.index, len(options))), option)
        return True
    return False


def apply_validation(state: CheckoutState, ops: Iterable[Operation], instance_id: str) -> None:
    """Record validation errors; any error blocks the checkout."""
    for op in ops:
        if isinstance(op, ValidationAddOperation):
            state.errors.extend(
                ValidationError(e.message, e.target, instance_id) for e in op.errors
            )


def block(state: CheckoutState, instance_id: str, message: str) -> None:
    """Block the checkout because a blocking validation function failed to run."""
    state.errors.append(ValidationError(message, "$.cart", instance_id))


# --------------------------------------------------------------------------------------
# Finalize: combination, allocation, totals
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Allocation:
    """One discount's share of one line (or delivery option)."""

    instance_id: str
    title: str
    discount_class: DiscountClass
    amount: Decimal
    code: str | None
    message: str | None


@dataclass(frozen=True, slots=True)
class PricedLine:
    id: str
    quantity: int
    title: str | None
    merchandise_id: str
    unit_price: Decimal
    subtotal: Decimal
    allocations: tuple[Allocation, ...]
    total: Decimal
    components: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PricedOption:
    key: str
    title: str
    cost: Decimal
    discount: Decimal
    total: Decimal
    method_type: str | None
    allocations: tuple[Allocation, ...]


@dataclass(frozen=True, slots=True)
class PricedGroup:
    id: str
    options: tuple[PricedOption, ...]
    selected: str | None


@dataclass(frozen=True, slots=True)
class AppliedDiscount:
    instance_id: str
    title: str
    discount_class: DiscountClass
    amount: Decimal
    code: str | None
    message: str | None


@dataclass(frozen=True, slots=True)
class CodeOutcome:
    code: str
    status: CodeStatus


@dataclass(frozen=True, slots=True)
class PricedCheckout:
    """The result of `finalize`: every amount rounded to the currency's minor unit."""

    currency: str
    lines: tuple[PricedLine, ...]
    groups: tuple[PricedGroup, ...]
    payment_methods: tuple[Option, ...]
    discounts: tuple[AppliedDiscount, ...]
    codes: tuple[CodeOutcome, ...]
    errors: tuple[ValidationError, ...]
    subtotal: Decimal
    """Sum of line subtotals before discounts."""
    line_discounts: Decimal
    order_discounts: Decimal
    shipping: Decimal
    shipping_discounts: Decimal
    total: Decimal

    @property
    def blocked(self) -> bool:
        return bool(self.errors)

    @property
    def discount_total(self) -> Decimal:
        return self.line_discounts + self.order_discounts + self.shipping_discounts


@dataclass(slots=True)
class _Outcome:
    """Pricing of one candidate set of discounts."""

    line_allocs: dict[str, list[Allocation]]
    option_allocs: dict[str, list[Allocation]]
    discounts: list[AppliedDiscount]
    line_discounts: Decimal
    order_discounts: Decimal
    shipping_discounts: Decimal

    @property
    def savings(self) -> Decimal:
        return self.line_discounts + self.order_discounts + self.shipping_discounts


def _compatible(
    a: DiscountSource,
    a_classes: set[DiscountClass],
    b: DiscountSource,
    b_classes: set[DiscountClass],
) -> bool:
    return all(a.combines_with.allows(cb) for cb in b_classes) and all(
        b.combines_with.allows(ca) for ca in a_classes
    )


def _maximal_compatible_sets(
    sources: Sequence[DiscountSource], classes: dict[str, set[DiscountClass]]
) -> list[list[DiscountSource]]:
    """Maximal sets of pairwise-compatible discounts (Bron–Kerbosch with pivoting).

    Adding a discount never lowers the buyer's savings (every discount is capped at what
    is left to discount), so the best set is always a maximal one.
    """
    ids = [s.instance_id for s in sources]
    by_id = {s.instance_id: s for s in sources}
    neighbours = {
        a: {b for b in ids if b != a and _compatible(by_id[a], classes[a], by_id[b], classes[b])}
        for a in ids
    }
    found: list[list[DiscountSource]] = []

    def expand(r: list[str], p: set[str], x: set[str]) -> None:
        if len(found) >= MAX_COMBINATIONS_EXAMINED:
            return
        if not p and not x:
            found.append(sorted((by_id[i] for i in r), key=lambda s: s.position))
            return
        pivot = max(p | x, key=lambda u: len(neighbours[u] & p))
        for v in sorted(p - neighbours[pivot], key=lambda i: by_id[i].position):
            expand([*r, v], p & neighbours[v], x & neighbours[v])
            p = p - {v}
            x = x | {v}

    expand([], set(ids), set())
    return found


def _price(state: CheckoutState, applications: Sequence[Application]) -> _Outcome:
    """Price one set of applications: product discounts (best per line), then order
    discounts on what is left of the included lines, then delivery (best per option)."""
    currency = state.currency
    line_allocs: dict[str, list[Allocation]] = {}
    option_allocs: dict[str, list[Allocation]] = {}
    discounts: list[AppliedDiscount] = []

    # Product: per line, the single largest saving wins (ties: earlier discount).
    best_line: dict[str, tuple[Decimal, Application]] = {}
    for app in applications:
        if app.discount_class is DiscountClass.PRODUCT:
            for line_id, saving in _product_savings(state, app.candidate).items():
                current = best_line.get(line_id)
                if saving > 0 and (current is None or saving > current[0]):
                    best_line[line_id] = (saving, app)
    line_discounts: dict[str, Decimal] = {}
    per_app: dict[int, Decimal] = {}
    for line_id, (saving, app) in best_line.items():
        line_discounts[line_id] = saving
        line_allocs.setdefault(line_id, []).append(_allocation(app, saving))
        per_app[id(app)] = per_app.get(id(app), ZERO) + saving
    for app in applications:
        if id(app) in per_app:
            discounts.append(_applied(app, per_app[id(app)]))

    # Order: each discount on the subtotal after product discounts, allocated over the
    # included lines in proportion to what each line still costs, never below zero.
    remaining = {line.id: line.subtotal - line_discounts.get(line.id, ZERO) for line in state.lines}
    order_total = ZERO
    for app in applications:
        if app.discount_class is not DiscountClass.ORDER:
            continue
        base = _order_base(state, app.candidate, line_discounts)
        included = [line_id for line_id in base if remaining[line_id] > 0]
        available = sum((remaining[i] for i in included), ZERO)
        amount = min(_order_amount(state, app.candidate, sum(base.values(), ZERO)), available)
        if amount <= 0:
            continue
        parts = allocate(amount, [remaining[i] for i in included], currency)
        for line_id, part in zip(included, parts, strict=True):
            if part > 0:
                remaining[line_id] -= part
                line_allocs.setdefault(line_id, []).append(_allocation(app, part))
        order_total += amount
        discounts.append(_applied(app, amount))

    # Shipping: per option the largest saving wins; only selected options count towards
    # the buyer's savings, but every option shows its discounted price.
    best_option: dict[str, tuple[Decimal, Application]] = {}
    for app in applications:
        if app.discount_class is DiscountClass.SHIPPING:
            for handle, saving in _delivery_savings(state, app.candidate).items():
                current = best_option.get(handle)
                if saving > 0 and (current is None or saving > current[0]):
                    best_option[handle] = (saving, app)
    shipping_total = ZERO
    selected = {_selected(g) for g in state.groups}
    shipping_per_app: dict[int, Decimal] = {}
    for handle, (saving, app) in best_option.items():
        option_allocs[handle] = [_allocation(app, saving)]
        if handle in selected:
            shipping_total += saving
            shipping_per_app[id(app)] = shipping_per_app.get(id(app), ZERO) + saving
    for app in applications:
        if id(app) in shipping_per_app:
            discounts.append(_applied(app, shipping_per_app[id(app)]))

    return _Outcome(
        line_allocs,
        option_allocs,
        discounts,
        sum(line_discounts.values(), ZERO),
        order_total,
        shipping_total,
    )


def _selected(group: Group) -> str | None:
    keys = [o.key for o in group.options]
    if group.selected in keys:
        return group.selected
    return keys[0] if keys else None


def _allocation(app: Application, amount: Decimal) -> Allocation:
    return Allocation(
        app.source.instance_id,
        app.source.title,
        app.discount_class,
        amount,
        app.source.code,
        app.candidate.message,
    )


def _applied(app: Application, amount: Decimal) -> AppliedDiscount:
    return AppliedDiscount(
        app.source.instance_id,
        app.source.title,
        app.discount_class,
        amount,
        app.source.code,
        app.candidate.message,
    )


def _best_outcome(state: CheckoutState) -> tuple[_Outcome, set[str]]:
    by_source: dict[str, list[Application]] = {}
    sources: dict[str, DiscountSource] = {}
    for app in state.applications:
        by_source.setdefault(app.source.instance_id, []).append(app)
        sources[app.source.instance_id] = app.source
    classes = {sid: {a.discount_class for a in apps} for sid, apps in by_source.items()}
    ordered = sorted(sources.values(), key=lambda s: s.position)
    best: tuple[_Outcome, list[DiscountSource]] | None = None
    for candidate_set in _maximal_compatible_sets(ordered, classes):
        apps = [a for s in candidate_set for a in by_source[s.instance_id]]
        outcome = _price(state, apps)
        if (
            best is None
            or outcome.savings > best[0].savings
            or (
                outcome.savings == best[0].savings
                and [s.position for s in candidate_set] < [s.position for s in best[1]]
            )
        ):
            best = (outcome, candidate_set)
    if best is None:
        return _price(state, []), set()
    return best[0], {s.instance_id for s in best[1]}


def _code_outcomes(
    state: CheckoutState, winners: set[str], had_applications: set[str]
) -> list[CodeOutcome]:
    outcomes: list[CodeOutcome] = []
    for code in state.entered_codes:
        folded = code.casefold()
        owners = {
            sid
            for sid, source in state.triggered.items()
            if (source.code is not None and source.code.casefold() == folded)
            or folded in state.accepted_codes.get(sid, set())
        }
        if owners & winners:
            status = CodeStatus.APPLIED
        elif not owners:
            status = CodeStatus.NOT_FOUND
        elif owners & had_applications:
            status = CodeStatus.NOT_COMBINABLE
        else:
            status = CodeStatus.NOT_APPLICABLE
        outcomes.append(CodeOutcome(code, status))
    return outcomes


def finalize(state: CheckoutState) -> PricedCheckout:
    """Resolve which discounts apply, allocate them and price the checkout.

    Totals: subtotal (lines before discounts) − line discounts − order discounts +
    shipping of the selected options − shipping discounts. Taxes are not computed.
    """
    currency = state.currency
    outcome, winners = _best_outcome(state)
    lines = []
    for line in state.lines:
        allocs = tuple(outcome.line_allocs.get(line.id, ()))
        subtotal = quantize(line.subtotal, currency)
        lines.append(
            PricedLine(
                id=line.id,
                quantity=line.quantity,
                title=line.title,
                merchandise_id=str(line.merchandise.get("id", "")),
                unit_price=quantize(line.unit_price, currency),
                subtotal=subtotal,
                allocations=allocs,
                total=subtotal - sum((a.amount for a in allocs), ZERO),
                components=tuple(line.components),
            )
        )
    groups = []
    shipping = ZERO
    for group in state.groups:
        options = []
        for option in group.options:
            allocs = tuple(outcome.option_allocs.get(option.key, ()))
            discount = sum((a.amount for a in allocs), ZERO)
            cost = quantize(option.cost, currency)
            options.append(
                PricedOption(
                    option.key,
                    option.title,
                    cost,
                    discount,
                    cost - discount,
                    option.method_type,
                    allocs,
                )
            )
        selected = _selected(group)
        shipping += next((o.cost for o in options if o.key == selected), ZERO)
        groups.append(PricedGroup(group.id, tuple(options), selected))
    subtotal = sum((line.subtotal for line in lines), ZERO)
    had = {a.source.instance_id for a in state.applications}
    total = (
        subtotal
        - outcome.line_discounts
        - outcome.order_discounts
        + shipping
        - outcome.shipping_discounts
    )
    return PricedCheckout(
        currency=currency,
        lines=tuple(lines),
        groups=tuple(groups),
        payment_methods=tuple(state.payment_methods),
        discounts=tuple(outcome.discounts),
        codes=tuple(_code_outcomes(state, winners, had)),
        errors=tuple(state.errors),
        subtotal=subtotal,
        line_discounts=outcome.line_discounts,
        order_discounts=outcome.order_discounts,
        shipping=shipping,
        shipping_discounts=outcome.shipping_discounts,
        total=total,
    )


__all__ = [
    "Allocation",
    "AppliedDiscount",
    "CheckoutState",
    "CodeOutcome",
    "CodeStatus",
    "CombinesWith",
    "DiscountClass",
    "DiscountSource",
    "PricedCheckout",
    "PricedLine",
    "apply_cart_transform",
    "apply_delivery_customization",
    "apply_payment_customization",
    "apply_validation",
    "block",
    "collect_discounts",
    "finalize",
]
