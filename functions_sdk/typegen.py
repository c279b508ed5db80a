"""Types for a function's input and output: JSON Schema and Rust (serde).

The *input* types are derived from a compiled input query (`functions_sdk.query`): the
exact JSON shape its execution yields — response keys (aliases included), nullability,
lists, fields that ``@skip``/``@include`` or a type condition may leave out, and
abstract fields (``merchandise``) as a ``__typename``-tagged union when the query
selects ``__typename``. The *output* types are the target's output schema
(`functions_sdk.apis.outputs`), with its value rules (ranges, formats, references)
carried into the JSON Schema.

Both go through one intermediate model (`Struct`, `Tagged`, `OneOf`, `Enum`, `ListOf`,
`Scalar`), which two emitters print: `json_schema` (Draft 2020-12) and `rust_module`
(``serde`` structs and enums that deserialize the input and serialize a valid output).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Final

from graphql import (
    BooleanValueNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInputType,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLScalarType,
    GraphQLSchema,
    InlineFragmentNode,
    SelectionSetNode,
    is_abstract_type,
    is_list_type,
    is_non_null_type,
    is_required_input_field,
)
from graphql.pyutils import Undefined
from graphql.utilities.coerce_input_value import coerce_default_value

from functions_sdk.apis.outputs import (
    FieldRule,
    Pattern,
    Range,
    Reference,
    field_rule,
    output_type,
)
from functions_sdk.query import InputQuery

JSON_SCHEMA_DIALECT: Final = "https://json-schema.org/draft/2020-12/schema"
DECIMAL_PATTERN: Final = r"^-?\d+(\.\d+)?$"
"""A Decimal as a string: what the input carries and what outputs may write."""

# --------------------------------------------------------------------------------------
# The model
# --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Scalar:
    """A GraphQL scalar (``String``, ``Int``, ``Decimal``, ``JSON`` ...)."""

    name: str


@dataclass(frozen=True, slots=True)
class Enum:
    """A GraphQL enum: a closed set of strings."""

    name: str
    values: tuple[str, ...]
    description: str | None = None


@dataclass(frozen=True, slots=True)
class ListOf:
    item: Ref


@dataclass(slots=True)
class Member:
    """A key of an object: its type, whether it may be absent, its default and rule."""

    key: str
    ref: Ref
    optional: bool = False
    default: Any = None
    description: str | None = None
    rule: FieldRule | None = None


@dataclass(slots=True)
class Struct:
    """A JSON object with known keys. `typename` is the ``__typename`` it is tagged with
    when it is a variant of a `Tagged` union."""

    name: str
    members: list[Member] = field(default_factory=list)
    description: str | None = None
    typename: str | None = None


@dataclass(slots=True)
class Tagged:
    """An abstract field whose objects carry ``__typename``: one `Struct` per type."""

    name: str
    variants: list[Struct]
    description: str | None = None


@dataclass(slots=True)
class OneOf:
    """A ``@oneOf`` input object: exactly one of `members` is set."""

    name: str
    members: list[Member]
    description: str | None = None


Shape = Scalar | Enum | ListOf | Struct | Tagged | OneOf


@dataclass(frozen=True, slots=True)
class Ref:
    """A use of a shape, nullable or not."""

    shape: Shape
    nullable: bool


@dataclass(frozen=True, slots=True)
class TypeModel:
    """The input or output types of one function: a root and every named shape."""

    root: Struct
    named: tuple[Struct | Tagged | OneOf | Enum, ...]
    title: str


# --------------------------------------------------------------------------------------
# Input: what a compiled input query yields
# --------------------------------------------------------------------------------------


def _pascal(key: str) -> str:
    key = key.lstrip("_")
    return key[:1].upper() + key[1:]


def _static_condition(node: FieldNode | InlineFragmentNode | FragmentSpreadNode) -> bool | None:
    """True if always included, False if never, None if it depends on a variable."""
    for directive in node.directives or ():
        name = directive.name.value
        if name not in ("skip", "include"):
            continue
        argument = next((a for a in directive.arguments or () if a.name.value == "if"), None)
        if argument is None or not isinstance(argument.value, BooleanValueNode):
            return None
        if argument.value.value == (name == "skip"):
            return False
    return True


@dataclass(slots=True)
class _Collected:
    nodes: list[FieldNode] = field(default_factory=list)
    always: bool = False


class _InputBuilder:
    def __init__(self, schema: GraphQLSchema, fragments: dict[str, FragmentDefinitionNode]) -> None:
        self.schema = schema
        self.fragments = fragments
        self.named: dict[str, Struct | Tagged | Enum] = {}
        self.enums: dict[str, Enum] = {}

    def unique(self, name: str) -> str:
        candidate, n = name, 2
        while candidate in self.named:
            candidate, n = f"{name}{n}", n + 1
        return candidate

    def applies(self, condition: str | None, runtime: GraphQLObjectType) -> bool:
        if condition is None or condition == runtime.name:
            return True
        type_ = self.schema.get_type(condition)
        return is_abstract_type(type_) and self.schema.is_sub_type(type_, runtime)

    def collect(
        self,
        runtime: GraphQLObjectType,
        selection_sets: Iterable[SelectionSetNode],
        always: bool,
        out: dict[str, _Collected],
    ) -> None:
        for selection_set in selection_sets:
            for node in selection_set.selections:
                assert isinstance(node, FieldNode | InlineFragmentNode | FragmentSpreadNode)
                included = _static_condition(node)
                if included is False:
                    continue
                certain = always and included is True
                if isinstance(node, FieldNode):
                    key = node.alias.value if node.alias else node.name.value
                    entry = out.setdefault(key, _Collected())
                    entry.nodes.append(node)
                    entry.always = entry.always or certain
                elif isinstance(node, InlineFragmentNode):
                    condition = node.type_condition.name.value if node.type_condition else None
                    if self.applies(condition, runtime):
                        self.collect(runtime, [node.selection_set], certain, out)
                elif isinstance(node, FragmentSpreadNode):
                    fragment = self.fragments[node.name.value]
                    if self.applies(fragment.type_condition.name.value, runtime):
                        self.collect(runtime, [fragment.selection_set], certain, out)

    def struct(
        self, name: str, runtime: GraphQLObjectType, selection_sets: Sequence[SelectionSetNode]
    ) -> Struct:
        collected: dict[str, _Collected] = {}
        self.collect(runtime, selection_sets, True, collected)
        struct = Struct(self.unique(name), description=runtime.description)
        self.named[struct.name] = struct
        for key, entry in collected.items():
            field_name = entry.nodes[0].name.value
            if field_name == "__typename":
                ref = Ref(Scalar("String"), nullable=False)
                description = "The object's GraphQL type name."
            else:
                definition = runtime.fields[field_name]
                sub = [n.selection_set for n in entry.nodes if n.selection_set is not None]
                ref = self.ref(definition.type, f"{struct.name}{_pascal(key)}", sub)
                description = definition.description
            struct.members.append(
                Member(key, ref, optional=not entry.always, description=description)
            )
        return struct

    def ref(
        self, type_: GraphQLOutputType, name: str, selection_sets: Sequence[SelectionSetNode]
    ) -> Ref:
        nullable = not is_non_null_type(type_)
        if not nullable:
            type_ = type_.of_type  # type: ignore[union-attr]
        if is_list_type(type_):
            return Ref(ListOf(self.ref(type_.of_type, name, selection_sets)), nullable)
        if isinstance(type_, GraphQLObjectType):
            return Ref(self.struct(name, type_, selection_sets), nullable)
        if is_abstract_type(type_):
            return Ref(self.abstract(name, type_, selection_sets), nullable)
        if isinstance(type_, GraphQLEnumType):
            if type_.name not in self.enums:
                self.enums[type_.name] = Enum(type_.name, tuple(type_.values), type_.description)
            return Ref(self.enums[type_.name], nullable)
        assert isinstance(type_, GraphQLScalarType)
        return Ref(Scalar(type_.name), nullable)

    def abstract(
        self, name: str, type_: Any, selection_sets: Sequence[SelectionSetNode]
    ) -> Struct | Tagged:
        possible = self.schema.get_possible_types(type_)
        variants = [self.struct(f"{name}On{t.name}", t, selection_sets) for t in possible]
        tagged = all(
            any(m.key == "__typename" and not m.optional for m in v.members) for v in variants
        )
        if tagged:
            for variant, runtime in zip(variants, possible, strict=True):
                variant.typename = runtime.name
                variant.members = [m for m in variant.members if m.key != "__typename"]
            union = Tagged(self.unique(name), variants, type_.description)
            self.named[union.name] = union
            return union
        # Without __typename the objects cannot be told apart: one struct holding every
        # key, each optional unless every type has it with the same shape.
        for variant in variants:
            del self.named[variant.name]
        merged = Struct(self.unique(name), description=type_.description)
        self.named[merged.name] = merged
        keys: dict[str, list[Member]] = {}
        for variant in variants:
            for member in variant.members:
                keys.setdefault(member.key, []).append(member)
        for key, members in keys.items():
            first = members[0]
            same = all(_same_shape(m.ref, first.ref) for m in members)
            everywhere = len(members) == len(variants) and all(not m.optional for m in members)
            ref = first.ref if same else Ref(Scalar("JSON"), nullable=True)
            merged.members.append(
                Member(key, ref, optional=not (same and everywhere), description=first.description)
            )
        return merged


def _same_shape(a: Ref, b: Ref) -> bool:
    if a.nullable != b.nullable or type(a.shape) is not type(b.shape):
        return False
    if isinstance(a.shape, ListOf) and isinstance(b.shape, ListOf):
        return _same_shape(a.shape.item, b.shape.item)
    if isinstance(a.shape, Struct | Tagged):
        return a.shape is b.shape
    return a.shape == b.shape


def input_model(query: InputQuery) -> TypeModel:
    """The JSON shape `query` yields when executed (`InputQuery.execute`)."""
    schema = query.target.graphql_schema
    root_type = schema.query_type
    assert root_type is not None
    builder = _InputBuilder(schema, query.fragments)
    root = builder.struct("Input", root_type, [query.operation.selection_set])
    named = [s for s in builder.named.values() if s is not root]
    return TypeModel(
        root, (*named, *builder.enums.values()), f"Input of {query.target.name} for this query"
    )


# --------------------------------------------------------------------------------------
# Output: the target's output schema
# --------------------------------------------------------------------------------------


def output_model(target: str) -> TypeModel:
    """The output types of `target` (`functions_sdk.apis.outputs`), with value rules."""
    named: dict[str, Struct | OneOf | Enum] = {}

    def shape_of(type_: Any) -> Shape:
        if isinstance(type_, GraphQLInputObjectType):
            if type_.name in named:
                return named[type_.name]
            members: list[Member] = []
            shape: Struct | OneOf = (
                OneOf(type_.name, members, type_.description)
                if type_.is_one_of
                else Struct(type_.name, members, type_.description)
            )
            named[type_.name] = shape
            for key, input_field in type_.fields.items():
                default = coerce_default_value(input_field)
                members.append(
                    Member(
                        key,
                        ref_of(input_field.type),
                        optional=not is_required_input_field(input_field),
                        default=None if default is Undefined else default,
                        description=input_field.description,
                        rule=field_rule(type_.name, key),
                    )
                )
            return shape
        if isinstance(type_, GraphQLEnumType):
            if type_.name not in named:
                named[type_.name] = Enum(type_.name, tuple(type_.values), type_.description)
            return named[type_.name]
        assert isinstance(type_, GraphQLScalarType)
        return Scalar(type_.name)

    def ref_of(type_: GraphQLInputType) -> Ref:
        nullable = not is_non_null_type(type_)
        inner: Any = type_ if nullable else type_.of_type  # type: ignore[union-attr]
        if is_list_type(inner):
            return Ref(ListOf(ref_of(inner.of_type)), nullable)
        return Ref(shape_of(inner), nullable)

    root = shape_of(output_type(target))
    assert isinstance(root, Struct)
    others = tuple(s for s in named.values() if s is not root)
    return TypeModel(root, others, f"Output of {target}")


# --------------------------------------------------------------------------------------
# JSON Schema
# --------------------------------------------------------------------------------------

_JSON_SCALARS: Final[dict[str, dict[str, Any]]] = {
    "String": {"type": "string"},
    "ID": {"type": "string"},
    "Handle": {"type": "string"},
    "Int": {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1},
    "Float": {"type": "number"},
    "Boolean": {"type": "boolean"},
    "Date": {"type": "string", "format": "date"},
    "DateTime": {"type": "string", "format": "date-time"},
    "URL": {"type": "string", "format": "uri", "pattern": "^https?://"},
    "JSON": {},
}


def _number(value: Decimal | int) -> int | float:
    return int(value) if value == int(value) else float(value)


def _scalar_schema(name: str, rule: FieldRule | None, *, output: bool) -> dict[str, Any]:
    if name == "Decimal":
        text = {"type": "string", "pattern": DECIMAL_PATTERN}
        if not output:
            return text
        number: dict[str, Any] = {"type": "number"}
        if isinstance(rule, Range):
            if rule.minimum is not None:
                number["minimum"] = _number(rule.minimum)
            if rule.maximum is not None:
                number["maximum"] = _number(rule.maximum)
        return {"anyOf": [text, number]}
    schema = dict(_JSON_SCALARS.get(name, {"type": "string"}))
    if isinstance(rule, Range):
        if rule.minimum is not None:
            schema["minimum"] = _number(rule.minimum)
        if rule.maximum is not None:
            schema["maximum"] = _number(rule.maximum)
    elif isinstance(rule, Pattern):
        schema["pattern"] = f"^{rule.regex.pattern}$"
    return schema


def _rule_note(rule: FieldRule | None) -> str | None:
    if isinstance(rule, Range):
        return f"Validated against: {rule.describe()}."
    if isinstance(rule, Reference):
        return f"Must name a {rule.kind} of the input."
    if isinstance(rule, Pattern):
        return f"Must be {rule.description}."
    return None


def json_schema(model: TypeModel, *, output: bool = False) -> dict[str, Any]:
    """A JSON Schema (Draft 2020-12) of `model`, named shapes under ``$defs``.

    Output schemas accept Decimals as strings or numbers and carry numeric ranges on the
    number form; references into the input are described, not enforced (they depend on
    the cart).
    """
    defs: dict[str, Any] = {}

    def ref(r: Ref, rule: FieldRule | None = None) -> dict[str, Any]:
        schema = shape(r.shape, rule)
        return {"anyOf": [schema, {"type": "null"}]} if r.nullable else schema

    def shape(s: Shape, rule: FieldRule | None) -> dict[str, Any]:
        if isinstance(s, Scalar):
            return _scalar_schema(s.name, rule, output=output)
        if isinstance(s, ListOf):
            return {"type": "array", "items": ref(s.item, rule)}
        if s.name not in defs:
            defs[s.name] = {}  # placed first: keeps $defs in discovery order
            defs[s.name] = define(s)
        return {"$ref": f"#/$defs/{s.name}"}

    def members(items: list[Member]) -> dict[str, Any]:
        properties: dict[str, Any] = {}
        for m in items:
            schema = ref(m.ref, m.rule)
            notes = " ".join(n for n in (m.description, _rule_note(m.rule)) if n)
            if notes or m.default is not None:
                schema = {**schema}
                if notes:
                    schema["description"] = notes
                if m.default is not None:
                    schema["default"] = m.default
            properties[m.key] = schema
        return properties

    def define(s: Struct | Tagged | OneOf | Enum) -> dict[str, Any]:
        result: dict[str, Any]
        if isinstance(s, Enum):
            result = {"type": "string", "enum": list(s.values)}
        elif isinstance(s, Struct):
            properties = members(s.members)
            if s.typename is not None:
                properties = {"__typename": {"const": s.typename}, **properties}
            required = [m.key for m in s.members if not m.optional]
            if s.typename is not None:
                required.insert(0, "__typename")
            result = {"type": "object", "properties": properties}
            if required:
                result["required"] = required
            result["additionalProperties"] = False
        elif isinstance(s, Tagged):
            result = {"oneOf": [shape(v, None) for v in s.variants]}
        else:
            # @oneOf: exactly one field, and it is not null.
            result = {
                "type": "object",
                "properties": {
                    m.key: shape(m.ref.shape, m.rule)
                    | ({"description": m.description} if m.description else {})
                    for m in s.members
                },
                "minProperties": 1,
                "maxProperties": 1,
                "additionalProperties": False,
            }
        if s.description:
            result = {"description": s.description, **result}
        return result

    root = define(model.root)
    return {"$schema": JSON_SCHEMA_DIALECT, "title": model.title, **root, "$defs": defs}


# --------------------------------------------------------------------------------------
# Rust
# --------------------------------------------------------------------------------------

_RUST_KEYWORDS: Final = frozenset(
    {
        "as",
        "async",
        "await",
        "break",
        "const",
        "continue",
        "crate",
        "dyn",
        "else",
        "enum",
        "extern",
        "false",
        "fn",
        "for",
        "if",
        "impl",
        "in",
        "let",
        "loop",
        "match",
        "mod",
        "move",
        "mut",
        "pub",
        "ref",
        "return",
        "self",
        "static",
        "struct",
        "super",
        "trait",
        "true",
        "type",
        "unsafe",
        "use",
        "where",
        "while",
        "abstract",
        "become",
        "box",
        "do",
        "final",
        "macro",
        "override",
        "priv",
        "try",
        "typeof",
        "unsized",
        "virtual",
        "yield",
    }
)
_RUST_SCALARS: Final[dict[str, str]] = {
    "Int": "i64",
    "Float": "f64",
    "Boolean": "bool",
    "Decimal": "Decimal",
    "JSON": "serde_json::Value",
}
_SNAKE = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")

_RUST_PRELUDE = """\
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A decimal number, kept as its exact decimal string ("29.95").
///
/// The input carries decimals as strings; an output may write a string or a JSON number
/// (Cartwheel accepts both) and this type writes the string. `From<f64>` formats
/// without an exponent, as the output validation requires.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Decimal(pub String);

impl Decimal {
    /// The value as an `f64` (0.0 if the string is not a number).
    pub fn as_f64(&self) -> f64 {
        self.0.parse().unwrap_or(0.0)
    }
}

impl From<f64> for Decimal {
    fn from(value: f64) -> Self {
        Decimal(format!("{}", value))
    }
}

impl From<i64> for Decimal {
    fn from(value: i64) -> Self {
        Decimal(value.to_string())
    }
}

impl From<&str> for Decimal {
    fn from(value: &str) -> Self {
        Decimal(value.to_string())
    }
}

impl Serialize for Decimal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Decimal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Number(serde_json::Number),
        }
        Ok(match Raw::deserialize(deserializer)? {
            Raw::Text(text) => Decimal(text),
            Raw::Number(number) => Decimal(number.to_string()),
        })
    }
}
"""


def _rust_field(key: str) -> str:
    name = _SNAKE.sub("_", key.lstrip("_")).lower() or "field"
    if name in ("self", "super", "crate"):  # keywords that cannot be raw identifiers
        return f"{name}_"
    return f"r#{name}" if name in _RUST_KEYWORDS else name


def _rust_variant(value: str) -> str:
    parts = [p for p in re.split(r"[_\W]+", value) if p]
    name = "".join(p[:1].upper() + p[1:].lower() for p in parts) or "Empty"
    return f"V{name}" if name[0].isdigit() else name


def _doc(text: str | None, indent: str) -> list[str]:
    if not text:
        return []
    return [f"{indent}/// {line}".rstrip() for line in text.strip().splitlines()]


def _rust_type(r: Ref, *, optional: bool = False) -> str:
    s = r.shape
    if isinstance(s, Scalar):
        base = _RUST_SCALARS.get(s.name, "String")
    elif isinstance(s, ListOf):
        base = f"Vec<{_rust_type(s.item)}>"
    else:
        base = s.name
    return f"Option<{base}>" if r.nullable or optional else base


def _rust_items(model: TypeModel, *, output: bool) -> list[str]:
    lines: list[str] = []
    derive = "#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]"
    for shape in (model.root, *model.named):
        lines.append("")
        lines.extend(_doc(shape.description, ""))
        if isinstance(shape, Enum):
            lines.append(
                "#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]"
            )
            lines.append(f"pub enum {shape.name} {{")
            for value in shape.values:
                lines.append(f'    #[serde(rename = "{value}")]')
                lines.append(f"    {_rust_variant(value)},")
            if not output:
                lines.append("    /// A value this SDK version does not know yet.")
                lines.append("    #[serde(other)]")
                lines.append("    Unknown,")
            lines.append("}")
        elif isinstance(shape, Tagged):
            lines.append(derive)
            lines.append('#[serde(tag = "__typename")]')
            lines.append(f"pub enum {shape.name} {{")
            for variant in shape.variants:
                lines.append(f"    {variant.typename}({variant.name}),")
            lines.append("    /// A type added to the schema after this code was generated.")
            lines.append("    #[serde(other)]")
            lines.append("    Other,")
            lines.append("}")
        elif isinstance(shape, OneOf):
            lines.append(derive)
            lines.append(f"pub enum {shape.name} {{")
            for m in shape.members:
                lines.extend(_doc(m.description, "    "))
                lines.append(f'    #[serde(rename = "{m.key}")]')
                lines.append(f"    {_pascal(m.key)}({_rust_type(Ref(m.ref.shape, False))}),")
            lines.append("}")
        else:
            lines.append(derive)
            if not shape.members:
                lines.append(f"pub struct {shape.name} {{}}")
                continue
            lines.append(f"pub struct {shape.name} {{")
            for m in shape.members:
                ident = _rust_field(m.key)
                attrs = []
                if ident.removeprefix("r#") != m.key:  # serde's name of `r#type` is "type"
                    attrs.append(f'rename = "{m.key}"')
                if m.optional or m.ref.nullable:
                    attrs.append("default")
                    if output:
                        attrs.append('skip_serializing_if = "Option::is_none"')
                lines.extend(
                    _doc(" ".join(n for n in (m.description, _rule_note(m.rule)) if n), "    ")
                )
                if attrs:
                    lines.append(f"    #[serde({', '.join(attrs)})]")
                lines.append(f"    pub {ident}: {_rust_type(m.ref, optional=m.optional)},")
            lines.append("}")
    return lines


def rust_module(input: TypeModel | None, output: TypeModel, *, header: str) -> str:
    """Rust source: the `Decimal` helper, then ``pub mod input`` (root `Input`) and
    ``pub mod output`` (root aliased as `Output`). Needs ``serde`` (derive) and
    ``serde_json``; compiles with Rust 1.63."""
    lines = [f"// {line}".rstrip() for line in header.strip().splitlines()]
    lines += ["", _RUST_PRELUDE.rstrip()]
    if input is not None:
        lines += [
            "",
            f"/// {input.title}.",
            "#[allow(dead_code, unused_imports, clippy::all)]",
            "pub mod input {",
            "    use super::Decimal;",
            "    use serde::{Deserialize, Serialize};",
        ]
        lines += [f"    {line}".rstrip() for line in _rust_items(input, output=False)]
        lines.append("}")
        lines.append("pub use self::input::Input;")
    lines += [
        "",
        f"/// {output.title}.",
        "#[allow(dead_code, unused_imports, clippy::all)]",
        "pub mod output {",
        "    use super::Decimal;",
        "    use serde::{Deserialize, Serialize};",
        "",
        "    /// The document the function writes to stdout.",
        f"    pub type Output = {output.root.name};",
    ]
    lines += [f"    {line}".rstrip() for line in _rust_items(output, output=True)]
    lines.append("}")
    lines.append("pub use self::output::Output;")
    return "\n".join(lines) + "\n"
