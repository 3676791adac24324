"""A validator for the subset of JSON Schema (2020-12) that contract/openapi.json uses.

`jsonschema` is not a dependency, and the document needs little: type (with "null" unions),
const, enum, properties / required / additionalProperties, items / minItems / maxItems,
pattern, minimum / maximum / multipleOf, oneOf / anyOf / allOf and local `$ref`s. A keyword
outside that subset raises, so a schema never passes by being silently half-checked.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

ANNOTATIONS = frozenset(
    {"description", "examples", "example", "default", "format", "title", "contentMediaType"}
)
VALIDATORS = frozenset(
    {
        "$ref", "type", "const", "enum", "properties", "required", "additionalProperties",
        "items", "minItems", "maxItems", "pattern", "minimum", "maximum", "multipleOf",
        "oneOf", "anyOf", "allOf",
    }
)  # fmt: skip


def _is_type(value: Any, kind: str) -> bool:
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float | Decimal) and not isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if kind == "array":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    raise ValueError(f"unknown JSON Schema type {kind!r}")


class Validator:
    def __init__(self, document: dict[str, Any]) -> None:
        self.document = document

    def resolve(self, ref: str) -> Any:
        if not ref.startswith("#/"):
            raise ValueError(f"only local $refs are supported, got {ref!r}")
        node: Any = self.document
        for part in ref[2:].split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node

    def errors(self, value: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
        unknown = set(schema) - VALIDATORS - ANNOTATIONS
        if unknown:
            raise ValueError(f"unsupported JSON Schema keywords {sorted(unknown)} at {path}")
        if "$ref" in schema:
            found = self.errors(value, self.resolve(schema["$ref"]), path)
            rest = {k: v for k, v in schema.items() if k != "$ref"}
            return found + self.errors(value, rest, path)
        kinds = schema.get("type")
        if kinds is not None:
            kinds = [kinds] if isinstance(kinds, str) else kinds
            if not any(_is_type(value, kind) for kind in kinds):
                return [f"{path}: expected {' or '.join(kinds)}, got {value!r:.80}"]
        return [
            *self._value_errors(value, schema, path),
            *self._object_errors(value, schema, path),
            *self._array_errors(value, schema, path),
            *self._combinator_errors(value, schema, path),
        ]

    def _value_errors(self, value: Any, schema: dict[str, Any], path: str) -> list[str]:
        found = []
        if "const" in schema and not _same(value, schema["const"]):
            found.append(f"{path}: expected {schema['const']!r}, got {value!r:.80}")
        if "enum" in schema and not any(_same(value, option) for option in schema["enum"]):
            found.append(f"{path}: {value!r:.80} is not one of {schema['enum']}")
        if isinstance(value, str) and not re.search(schema.get("pattern", ""), value):
            found.append(f"{path}: {value!r} does not match {schema['pattern']}")
        if _is_type(value, "number"):
            if "minimum" in schema and value < schema["minimum"]:
                found.append(f"{path}: {value} < minimum {schema['minimum']}")
            if "maximum" in schema and value > schema["maximum"]:
                found.append(f"{path}: {value} > maximum {schema['maximum']}")
            if "multipleOf" in schema:
                step = Decimal(str(schema["multipleOf"]))
                if Decimal(str(value)) % step != 0:
                    found.append(f"{path}: {value} is not a multiple of {step}")
        return found

    def _object_errors(self, value: Any, schema: dict[str, Any], path: str) -> list[str]:
        if not isinstance(value, dict):
            return []
        properties = schema.get("properties", {})
        required = schema.get("required", ())
        found = [f"{path}: missing {key!r}" for key in required if key not in value]
        extra = schema.get("additionalProperties", True)
        for key, item in value.items():
            where = f"{path}.{key}"
            if key in properties:
                found += self.errors(item, properties[key], where)
            elif extra is False:
                found.append(f"{path}: unexpected key {key!r}")
            elif isinstance(extra, dict):
                found += self.errors(item, extra, where)
        return found

    def _array_errors(self, value: Any, schema: dict[str, Any], path: str) -> list[str]:
        if not isinstance(value, list):
            return []
        found = []
        if len(value) < schema.get("minItems", 0):
            found.append(f"{path}: fewer than {schema['minItems']} items")
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            found.append(f"{path}: more than {schema['maxItems']} items")
        if "items" in schema:
            for index, item in enumerate(value):
                found += self.errors(item, schema["items"], f"{path}[{index}]")
        return found

    def _combinator_errors(self, value: Any, schema: dict[str, Any], path: str) -> list[str]:
        found = []
        for sub in schema.get("allOf", ()):
            found += self.errors(value, sub, path)
        if "anyOf" in schema and all(self.errors(value, s, path) for s in schema["anyOf"]):
            found.append(f"{path}: matches none of anyOf")
        if "oneOf" in schema:
            passing = sum(not self.errors(value, s, path) for s in schema["oneOf"])
            if passing != 1:
                found.append(f"{path}: matches {passing} of oneOf, expected exactly 1")
        return found


def _same(a: Any, b: Any) -> bool:
    # JSON equality: true is not 1.
    return type(a) is type(b) and a == b if isinstance(a, bool) or isinstance(b, bool) else a == b
