"""Output validation: a function's stdout JSON checked against its target's output type.

`validate_output` is on checkout's synchronous path, so each target's validator is built
once (cached) from the graphql-core output type of `functions_sdk.apis.outputs`:

1. **Fast path** — the type tree is turned into Python source, one function per input
   object type, compiled once (as the input query plans are): graphql-core's input
   coercion (`graphql.utilities.coerce_input_value`) for exactly this type, with
   Shopify's value rules (`FIELD_RULES`: ranges, formats, references into the input)
   checked in the same pass, building the typed operations (frozen dataclasses)
   directly. Common leaves (strings, ids, ints, booleans) are inlined; every other leaf
   goes through the scalar and enum coercers graphql-core uses. A differential test
   holds the generated coercion equal to graphql-core's.
2. **Diagnosis** — only when the fast path rejects the output: one walk collects every
   error with its JSON path (``$.operations[0].productDiscountsAdd.candidates[1].value
   .percentage.value``), a stable code (`OutputErrorCode`) and a message that says what
   to change.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import gc
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final, TypedDict

import orjson
from graphql import (
    GraphQLBoolean,
    GraphQLEnumType,
    GraphQLError,
    GraphQLID,
    GraphQLInputField,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLInt,
    GraphQLNonNull,
    GraphQLScalarType,
    GraphQLString,
    is_enum_type,
    is_input_object_type,
    is_list_type,
    is_non_null_type,
    is_required_input_field,
)
from graphql.pyutils import Undefined, did_you_mean, suggestion_list
from graphql.utilities.coerce_input_value import coerce_default_value

from functions_sdk.apis.outputs import (
    FieldRule,
    Operation,
    Pattern,
    Range,
    Reference,
    ReferenceKind,
    dataclass_of,
    field_rule,
    output_type,
    unwrap_one_of,
)
from functions_sdk.errors import CartwheelError

MAX_REPORTED_ERRORS = 50
"""Errors reported for one output; the rest are counted, not listed."""

GRAPHQL_MIN_INT: Final = -(2**31)
GRAPHQL_MAX_INT: Final = 2**31 - 1


class OutputErrorCode(enum.StrEnum):
    """Stable codes of the individual errors of an invalid output."""

    MALFORMED_JSON = "MALFORMED_JSON"
    """stdout is not one JSON document (or not UTF-8)."""
    INVALID_TYPE = "INVALID_TYPE"
    """A value of the wrong type: an object expected, a string for an Int, an unknown
    enum value, a malformed Decimal or URL."""
    NULL_VALUE = "NULL_VALUE"
    """null where the schema requires a value."""
    MISSING_FIELD = "MISSING_FIELD"
    """A required field is absent."""
    UNKNOWN_FIELD = "UNKNOWN_FIELD"
    """A field the schema does not define."""
    ONE_OF = "ONE_OF"
    """A @oneOf object (operation, value, target, condition) without exactly one field."""
    OUT_OF_RANGE = "OUT_OF_RANGE"
    """A number outside its documented range (percentage 0–100, amount ≥ 0, quantity ≥ 1)."""
    INVALID_FORMAT = "INVALID_FORMAT"
    """A string in the wrong format (a validation error target that is not a JSON path)."""
    UNKNOWN_REFERENCE = "UNKNOWN_REFERENCE"
    """An id or handle that is not in the input (cart line, delivery option, ...)."""


class OutputErrorDetail(TypedDict):
    """One error of an invalid output."""

    path: str
    code: str
    message: str


class InvalidOutputError(CartwheelError):
    """The function's output is not a valid result of its target.

    `errors` lists up to `MAX_REPORTED_ERRORS` errors in document order, each with a JSON
    path, a code (`OutputErrorCode`) and a message; `error_count` counts them all.
    """

    code = "INVALID_OUTPUT"

    def __init__(self, target: str, errors: list[OutputErrorDetail], error_count: int) -> None:
        first = errors[0]
        more = f" (and {error_count - 1} more)" if error_count > 1 else ""
        super().__init__(
            f"Invalid output for {target}: {first['path']}: {first['message']}{more}. "
            f"Fix the function so it writes a {target} result: `cartwheel fn schema "
            f"--target {target} --output` prints the schema, docs/OUTPUTS.md lists the "
            f"rules, and `cartwheel fn typegen --target {target}` generates Rust structs "
            "that serialize to it.",
            target=target,
            errors=errors,
            error_count=error_count,
        )
        self.target = target
        self.errors = errors
        self.error_count = error_count


@dataclass(frozen=True, slots=True)
class References:
    """The ids and handles an output may refer to, taken from the run's input.

    A kind is checked only when the input carried it: a function whose input query did
    not select ``cart.lines.id`` gets no cart-line check from its own input, which is why
    the platform passes the cart snapshot (which always has them). Discount codes match
    case-insensitively, as at checkout.
    """

    ids: Mapping[ReferenceKind, frozenset[str]] = field(default_factory=dict)

    @classmethod
    def from_input(cls, input: Mapping[str, Any] | bytes | str) -> References:
        """Collect references from a function input or a cart snapshot (same shapes:
        ``cart.lines[].id``, ``cart.deliveryGroups[].id`` and ``.deliveryOptions[]
        .handle``, ``paymentMethods[].id``, ``enteredDiscountCodes[]`` as strings or
        ``{code}``). Raises `orjson.JSONDecodeError` (a `ValueError`) when `input` is
        bytes or a string that is not JSON."""
        data: Any = orjson.loads(input) if isinstance(input, bytes | str) else input
        found: dict[ReferenceKind, frozenset[str]] = {}
        if not isinstance(data, Mapping):
            return cls(found)
        cart = data.get("cart")
        if isinstance(cart, Mapping):
            _collect(found, "cartLine", cart.get("lines"), "id")
            groups = cart.get("deliveryGroups")
            _collect(found, "deliveryGroup", groups, "id")
            if isinstance(groups, list):
                options = [
                    option
                    for group in groups
                    if isinstance(group, Mapping) and isinstance(group.get("deliveryOptions"), list)
                    for option in group["deliveryOptions"]
                ]
                if all(isinstance(g, Mapping) and "deliveryOptions" in g for g in groups):
                    _collect(found, "deliveryOption", options, "handle")
        _collect(found, "paymentMethod", data.get("paymentMethods"), "id")
        codes = data.get("enteredDiscountCodes")
        if isinstance(codes, list):
            plain = [c["code"] if isinstance(c, Mapping) else c for c in codes]
            if all(isinstance(c, str) for c in plain):
                found["discountCode"] = frozenset(c.casefold() for c in plain)
        return cls(found)


def _collect(
    found: dict[ReferenceKind, frozenset[str]], kind: ReferenceKind, items: Any, key: str
) -> None:
    if not isinstance(items, list):
        return
    values = [item.get(key) if isinstance(item, Mapping) else None for item in items]
    strings = [v for v in values if isinstance(v, str)]
    if len(strings) == len(values):
        found[kind] = frozenset(strings)


NO_REFERENCES: Final = References()
"""No input given: nothing is checked against it."""


@dataclass(frozen=True, slots=True)
class ValidatedOutput:
    """A valid output: its target and its typed operations, in output order, ready for
    checkout's apply step (``match op: case ProductDiscountsAddOperation(...)``)."""

    target: str
    operations: tuple[Operation, ...]


def validate_output(
    target: str,
    output: bytes | bytearray | memoryview | str | Any,
    *,
    input: Mapping[str, Any] | bytes | str | References | None = None,
) -> ValidatedOutput:
    """Validate a function's output for `target` and return its typed operations.

    `output` is the raw stdout (bytes/str, parsed as JSON) or an already parsed value.
    `input` (the function's input JSON, the cart snapshot, or precomputed `References`)
    enables the reference checks: cart line ids, delivery group ids, delivery option
    handles, payment method ids and entered discount codes must exist in it.

    Raises `InvalidOutputError` (code ``INVALID_OUTPUT``, `.errors` with JSON paths) and
    `functions_sdk.apis.outputs.UnknownOutputTargetError` (code ``UNKNOWN_TARGET``).
    """
    validator = _validator(target)
    if isinstance(output, bytes | bytearray | memoryview | str):
        try:
            value = orjson.loads(output)
        except orjson.JSONDecodeError as exc:
            detail = OutputErrorDetail(
                path="$",
                code=OutputErrorCode.MALFORMED_JSON.value,
                message=f"stdout is not valid JSON ({exc}); write exactly one JSON object",
            )
            raise InvalidOutputError(target, [detail], 1) from None
    else:
        value = output
    if input is None:
        refs = NO_REFERENCES.ids
    elif isinstance(input, References):
        refs = input.ids
    else:
        refs = References.from_input(input).ids
    # Building the operations allocates thousands of small objects, none of them
    # cyclic: pausing the cyclic GC meanwhile saves its repeated scans (~10%).
    pause = gc.isenabled()
    if pause:
        gc.disable()
    try:
        operations = validator.coerce(value, refs)
    except _Invalid:
        errors, count = validator.diagnose(value, refs)
        raise InvalidOutputError(target, errors, count) from None
    finally:
        if pause:
            gc.enable()
    return ValidatedOutput(target, tuple(operations))


# --------------------------------------------------------------------------------------
# The compiled fast path
# --------------------------------------------------------------------------------------


class _Invalid(Exception):
    """Raised by compiled coercers; carries nothing (diagnosis finds the details)."""


_INVALID: Final = _Invalid()
_MISSING: Final = object()

_Refs = Mapping[ReferenceKind, frozenset[str]]
_Coerce = Callable[[Any, _Refs], Any]


def _leaf_coercer(type_: GraphQLScalarType | GraphQLEnumType) -> Callable[[Any], Any]:
    """A leaf coercer with the exact semantics of graphql-core's, plus a fast path for
    the common JSON type; anything unusual goes to graphql-core's own coercer."""
    if isinstance(type_, GraphQLEnumType):
        by_name = {name: value.value for name, value in type_.values.items()}
        slow_enum = type_.coerce_input_value

        def coerce_enum(value: Any) -> Any:
            if type(value) is str:
                found = by_name.get(value, _MISSING)
                if found is not _MISSING:
                    return found
            return slow_enum(value)

        return coerce_enum
    slow = type_.coerce_input_value
    assert slow is not None
    if type_ is GraphQLString or type_ is GraphQLID:

        def coerce_str(value: Any) -> Any:
            return value if type(value) is str else slow(value)

        return coerce_str
    if type_ is GraphQLInt:

        def coerce_int(value: Any) -> Any:
            if type(value) is int and GRAPHQL_MIN_INT <= value <= GRAPHQL_MAX_INT:
                return value
            return slow(value)

        return coerce_int
    if type_ is GraphQLBoolean:

        def coerce_bool(value: Any) -> Any:
            return value if value is True or value is False else slow(value)

        return coerce_bool
    return slow


def _rule_check(rule: FieldRule | None) -> Callable[[Any, _Refs], bool] | None:
    """A predicate for one value under `rule` (True = acceptable)."""
    if rule is None:
        return None
    if isinstance(rule, Range):
        low, high = rule.minimum, rule.maximum
        if high is None:
            return lambda value, refs: value >= low
        return lambda value, refs: low <= value <= high
    if isinstance(rule, Pattern):
        match = rule.regex.fullmatch
        return lambda value, refs: match(value) is not None
    kind = rule.kind
    if kind == "discountCode":

        def known_code(value: Any, refs: _Refs) -> bool:
            codes = refs.get(kind)
            return codes is None or value.casefold() in codes

        return known_code

    def known(value: Any, refs: _Refs) -> bool:
        ids = refs.get(kind)
        return ids is None or value in ids

    return known


def _leaf_function(type_: Any, rule: FieldRule | None) -> _Coerce:
    """A coercer of one leaf value (scalar or enum) under `rule`; raises `_Invalid`."""
    leaf = _leaf_coercer(type_)
    if isinstance(rule, Reference) and rule.kind != "discountCode":
        # Ids and handles: the common case (a string in the set) in one call.
        kind = rule.kind

        def coerce_reference(value: Any, refs: _Refs) -> Any:
            if type(value) is not str:
                try:
                    value = leaf(value)
                except Exception:
                    raise _INVALID from None
            known = refs.get(kind)
            if known is not None and value not in known:
                raise _INVALID
            return value

        return coerce_reference
    check = _rule_check(rule)
    if check is None:

        def coerce_leaf(value: Any, refs: _Refs) -> Any:
            try:
                return leaf(value)
            except Exception:
                raise _INVALID from None

        return coerce_leaf
    if isinstance(rule, Range):
        low, high = rule.minimum, rule.maximum

        def coerce_in_range(value: Any, refs: _Refs) -> Any:
            try:
                result = leaf(value)
            except Exception:
                raise _INVALID from None
            if result < low or (high is not None and result > high):
                raise _INVALID
            return result

        return coerce_in_range

    def coerce_checked_leaf(value: Any, refs: _Refs) -> Any:
        try:
            result = leaf(value)
        except Exception:
            raise _INVALID from None
        if not check(result, refs):
            raise _INVALID
        return result

    return coerce_checked_leaf


class _Generator:
    """Writes the Python source of one target's coercion: a function per input object
    type, with the common leaf cases inlined, compiled once (the same approach as the
    input query plans). Semantics are graphql-core's `coerce_input_value` plus the
    `FIELD_RULES`; tests/sdk/test_output_coercion.py holds them equal."""

    def __init__(self) -> None:
        self.namespace: dict[str, Any] = {
            "_INVALID": _INVALID,
            "_Invalid": _Invalid,
            "_MISSING": _MISSING,
        }
        self.functions: dict[str, list[str]] = {}
        self.helpers = 0

    def helper(self, value: Any) -> str:
        self.helpers += 1
        name = f"_h{self.helpers}"
        self.namespace[name] = value
        return name

    def source(self) -> str:
        return "\n\n".join("\n".join(lines) for lines in self.functions.values()) + "\n"

    def function(self, name: str, body: list[str]) -> None:
        self.functions[name] = [
            f"def {name}(value, refs):",
            "    try:",
            *(f"        {line}" for line in body),
            "    except _Invalid:",
            "        raise",
            "    except Exception:",
            "        raise _INVALID from None",
        ]

    def leaf_expr(self, type_: Any, rule: FieldRule | None, src: str) -> str:
        if rule is None and type_ in (GraphQLString, GraphQLID):
            return (
                f"({src} if type({src}) is str else {self.helper(type_.coerce_input_value)}({src}))"
            )
        if rule is None and type_ is GraphQLBoolean:
            slow = self.helper(type_.coerce_input_value)
            return f"({src} if {src} is True or {src} is False else {slow}({src}))"
        if rule is None and type_ is GraphQLInt:
            slow = self.helper(type_.coerce_input_value)
            return (
                f"({src} if type({src}) is int and {GRAPHQL_MIN_INT} <= {src} <= "
                f"{GRAPHQL_MAX_INT} else {slow}({src}))"
            )
        return f"{self.helper(_leaf_function(type_, rule))}({src}, refs)"

    def expr(self, type_: Any, rule: FieldRule | None, src: str) -> str:
        """An expression coercing `src` (a plain name) to `type_`."""
        if is_non_null_type(type_):
            inner = type_.of_type
            if is_list_type(inner):
                return f"{self.list_function(type_, rule)}({src}, refs)"
            # Objects and leaves reject null themselves (null is not a dict; scalar
            # coercers raise on None).
            return self.value_expr(inner, rule, src)
        if is_list_type(type_):
            return f"{self.list_function(type_, rule)}({src}, refs)"
        if is_input_object_type(type_):
            return f"(None if {src} is None else {self.object_function(type_)}({src}, refs))"
        return f"(None if {src} is None else {self.leaf_expr(type_, rule, src)})"

    def value_expr(self, type_: Any, rule: FieldRule | None, src: str) -> str:
        """Like `expr` for a `src` known not to be null."""
        inner = type_.of_type if is_non_null_type(type_) else type_
        if is_list_type(inner):
            return f"{self.list_function(inner, rule)}({src}, refs)"
        if is_input_object_type(inner):
            return f"{self.object_function(inner)}({src}, refs)"
        return self.leaf_expr(inner, rule, src)

    def list_function(self, type_: Any, rule: FieldRule | None) -> str:
        name = f"_l{len(self.functions)}"
        self.functions[name] = []  # reserve the name (and the order) before recursing
        non_null = is_non_null_type(type_)
        list_type = type_.of_type if non_null else type_
        item = self.expr(list_type.of_type, rule, "x")
        single = self.expr(list_type.of_type, rule, "value")
        self.function(
            name,
            [
                "if value is None:",
                "    raise _INVALID" if non_null else "    return None",
                "if isinstance(value, (list, tuple)):",
                f"    return [{item} for x in value]",
                "# GraphQL input coercion accepts a single value where a list is expected.",
                f"return [{single}]",
            ],
        )
        return name

    def object_function(self, type_: GraphQLInputObjectType) -> str:
        name = f"c_{type_.name}"
        if name in self.functions:
            return name
        self.functions[name] = []
        fields = list(type_.fields.items())
        if type_.is_one_of:
            body = ["if not isinstance(value, dict) or len(value) != 1:", "    raise _INVALID"]
            body += ["for key, item in value.items():", "    break", "if item is None:"]
            body += ["    raise _INVALID"]
            unwrap = type_.out_type is unwrap_one_of
            out = None if unwrap else self.helper(type_.out_type)
            for index, (field_name, input_field) in enumerate(fields):
                member = self.value_expr(
                    input_field.type, field_rule(type_.name, field_name), "item"
                )
                keyword = "if" if index == 0 else "elif"
                body.append(f"{keyword} key == {field_name!r}:")
                result = member if unwrap else f"{out}({{{input_field.out_name!r}: {member}}})"
                body.append(f"    return {result}")
            body.append("raise _INVALID")
            self.function(name, body)
            return name

        cls = dataclass_of(type_)
        body = ["if not isinstance(value, dict):", "    raise _INVALID"]
        required: list[str] = []
        variables: list[tuple[str, str, GraphQLInputField]] = []
        for index, (field_name, input_field) in enumerate(fields):
            var = f"v{index}"
            variables.append((var, field_name, input_field))
            default = coerce_default_value(input_field)
            if is_required_input_field(input_field):
                required.append(var)
                body.append(f"{var} = _MISSING")
            elif default is not Undefined:
                body.append(f"{var} = {self.constant(default)}")
            elif cls is not None:
                body.append(f"{var} = None")  # the dataclass default of an optional field
            else:
                body.append(f"{var} = _MISSING")
        body.append("for key, item in value.items():")
        for index, (var, field_name, input_field) in enumerate(variables):
            keyword = "if" if index == 0 else "elif"
            value = self.expr(input_field.type, field_rule(type_.name, field_name), "item")
            body += [f"    {keyword} key == {field_name!r}:", f"        {var} = {value}"]
        body += ["    else:", "        raise _INVALID"]
        if required:
            body += [
                f"if {' or '.join(f'{v} is _MISSING' for v in required)}:",
                "    raise _INVALID",
            ]
        if cls is not None:
            # Positional arguments in the dataclass's field order: a frozen dataclass
            # is built about twice as fast as with keywords.
            by_name: dict[str, str] = {}
            for var, _, input_field in variables:
                assert input_field.out_name is not None
                is_list = is_list_type(
                    input_field.type.of_type
                    if is_non_null_type(input_field.type)
                    else input_field.type
                )
                if is_list and is_non_null_type(input_field.type):
                    by_name[input_field.out_name] = f"tuple({var})"
                elif is_list:
                    by_name[input_field.out_name] = f"(None if {var} is None else tuple({var}))"
                else:
                    by_name[input_field.out_name] = var
            arguments = [by_name[f.name] for f in dataclasses.fields(cls)]
            body.append(f"return {self.helper(cls)}({', '.join(arguments)})")
        else:
            body.append("coerced = {}")
            for var, field_name, input_field in variables:
                body += [
                    f"if {var} is not _MISSING:",
                    f"    coerced[{(input_field.out_name or field_name)!r}] = {var}",
                ]
            body.append(f"return {self.helper(type_.out_type)}(coerced)")
        self.function(name, body)
        return name

    def constant(self, value: Any) -> str:
        if value is None or isinstance(value, bool | int | str):
            return repr(value)
        return self.helper(value)


def _generate(root: GraphQLInputObjectType, target: str) -> tuple[_Coerce, str]:
    generator = _Generator()
    entry = generator.object_function(root)
    source = generator.source()
    code = compile(source, f"<cartwheel output coercion of {target}>", "exec")
    exec(code, generator.namespace)
    function: _Coerce = generator.namespace[entry]
    return function, source


# --------------------------------------------------------------------------------------
# Diagnosis (failure path only)
# --------------------------------------------------------------------------------------

_Path = tuple[str | int, ...]


def format_path(path: Iterable[str | int]) -> str:
    """``("operations", 0, "productDiscountsAdd")`` → ``$.operations[0].productDiscountsAdd``."""
    parts = ["$"]
    for part in path:
        if isinstance(part, int):
            parts.append(f"[{part}]")
        elif part.isidentifier():
            parts.append(f".{part}")
        else:
            parts.append(f"[{orjson.dumps(part).decode()}]")
    return "".join(parts)


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float | Decimal):
        return f"number {value}"
    if isinstance(value, str):
        shown = value if len(value) <= 40 else value[:37] + "..."
        return f"string {orjson.dumps(shown).decode()}"
    if isinstance(value, list | tuple):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


class _Diagnosis:
    def __init__(self, refs: _Refs) -> None:
        self.refs = refs
        self.errors: list[OutputErrorDetail] = []
        self.count = 0

    def report(self, path: _Path, code: OutputErrorCode, message: str) -> None:
        self.count += 1
        if len(self.errors) < MAX_REPORTED_ERRORS:
            self.errors.append(
                OutputErrorDetail(path=format_path(path), code=code, message=message)
            )

    def walk(
        self, value: Any, type_: GraphQLInputType, path: _Path, rule: FieldRule | None
    ) -> None:
        if is_non_null_type(type_):
            if value is None:
                self.report(
                    path,
                    OutputErrorCode.NULL_VALUE,
                    f"expected a value of type {type_}, found null",
                )
                return
            type_ = type_.of_type
        elif value is None:
            return
        if is_list_type(type_):
            if isinstance(value, list | tuple):
                for index, item in enumerate(value):
                    self.walk(item, type_.of_type, (*path, index), rule)
            else:
                self.walk(value, type_.of_type, path, rule)
        elif is_input_object_type(type_):
            self.walk_object(value, type_, path)
        else:
            self.walk_leaf(value, type_, path, rule)

    def walk_object(self, value: Any, type_: GraphQLInputObjectType, path: _Path) -> None:
        if not isinstance(value, dict):
            self.report(
                path,
                OutputErrorCode.INVALID_TYPE,
                f"expected an object of type {type_.name}, found {_json_kind(value)}",
            )
            return
        fields: dict[str, GraphQLInputField] = type_.fields
        for name, item in value.items():
            input_field = fields.get(name)
            if input_field is None:
                hint = did_you_mean(suggestion_list(name, list(fields)))
                self.report(
                    (*path, name),
                    OutputErrorCode.UNKNOWN_FIELD,
                    f"{type_.name} has no field {name!r}.{hint}".rstrip("."),
                )
            else:
                self.walk(item, input_field.type, (*path, name), field_rule(type_.name, name))
        for name, input_field in fields.items():
            if name not in value and is_required_input_field(input_field):
                self.report(
                    (*path, name),
                    OutputErrorCode.MISSING_FIELD,
                    f"{type_.name}.{name} of type {input_field.type} is required",
                )
        if type_.is_one_of:
            given = [name for name in value if name in fields]
            choices = ", ".join(fields)
            if len(value) != 1 or not given:
                self.report(
                    path,
                    OutputErrorCode.ONE_OF,
                    f"{type_.name} must have exactly one of: {choices}; found {len(value)} fields",
                )
            elif value[given[0]] is None:
                self.report(
                    (*path, given[0]),
                    OutputErrorCode.ONE_OF,
                    f"the one field of {type_.name} must not be null",
                )

    def walk_leaf(self, value: Any, type_: Any, path: _Path, rule: FieldRule | None) -> None:
        coerce = _leaf_coercer(type_)
        try:
            result = coerce(value)
        except GraphQLError as exc:
            self.report(path, OutputErrorCode.INVALID_TYPE, _leaf_message(type_, value, exc))
            return
        except Exception as exc:
            self.report(path, OutputErrorCode.INVALID_TYPE, f"expected {type_.name}: {exc}")
            return
        if rule is None:
            return
        check = _rule_check(rule)
        assert check is not None
        if check(result, self.refs):
            return
        if isinstance(rule, Range):
            self.report(
                path,
                OutputErrorCode.OUT_OF_RANGE,
                f"{value} is out of range: must be {rule.describe()}",
            )
        elif isinstance(rule, Pattern):
            self.report(
                path,
                OutputErrorCode.INVALID_FORMAT,
                f"{_json_kind(value)} must be {rule.description}",
            )
        else:
            self.report(path, OutputErrorCode.UNKNOWN_REFERENCE, _reference_message(rule, result))


def _leaf_message(type_: Any, value: Any, exc: GraphQLError) -> str:
    if is_enum_type(type_):
        return f"{type_.name} must be one of {', '.join(type_.values)}; found {_json_kind(value)}"
    return exc.message.rstrip(".")


_REFERENCE_SOURCES: Final[dict[ReferenceKind, str]] = {
    "cartLine": "a cart line id from the input (cart.lines[].id)",
    "deliveryGroup": "a delivery group id from the input (cart.deliveryGroups[].id)",
    "deliveryOption": "a delivery option handle from the input "
    "(cart.deliveryGroups[].deliveryOptions[].handle)",
    "paymentMethod": "a payment method id from the input (paymentMethods[].id)",
    "discountCode": "one of the codes the buyer entered (enteredDiscountCodes)",
}


def _reference_message(rule: Reference, value: Any) -> str:
    return f"{value!r} is not in the input: use {_REFERENCE_SOURCES[rule.kind]}"


@dataclass(frozen=True, slots=True)
class _Validator:
    root: GraphQLNonNull[GraphQLInputObjectType]
    coerce: _Coerce
    source: str

    def diagnose(self, value: Any, refs: _Refs) -> tuple[list[OutputErrorDetail], int]:
        diagnosis = _Diagnosis(refs)
        if not isinstance(value, dict):
            diagnosis.report(
                (),
                OutputErrorCode.INVALID_TYPE,
                f'the output must be a JSON object like {{"operations": [...]}}, '
                f"found {_json_kind(value)}",
            )
        else:
            diagnosis.walk(value, self.root, (), None)
        if not diagnosis.errors:  # pragma: no cover - the differential tests forbid this
            diagnosis.report((), OutputErrorCode.INVALID_TYPE, "the output was rejected")
        return diagnosis.errors, diagnosis.count


@functools.cache
def _validator(target: str) -> _Validator:
    root = output_type(target)
    coerce, source = _generate(root, target)
    return _Validator(GraphQLNonNull(root), coerce, source)


def compiled_coercer(target: str) -> Callable[[Any, Mapping[ReferenceKind, frozenset[str]]], Any]:
    """The cached generated coercion of `target`'s result, called as
    ``coerce(value, References(...).ids)``; it raises an internal signal on invalid
    values (`is_invalid_signal`). Exposed for the differential tests and the benchmark."""
    return _validator(target).coerce


def is_invalid_signal(exc: BaseException) -> bool:
    """Whether `exc` is the compiled coercers' rejection signal."""
    return isinstance(exc, _Invalid)
