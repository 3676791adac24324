"""A recursive comparison of JSON shapes: same keys, same nesting, same JSON types.

Values are not compared. A null on either side matches anything, because the contract's
nulls mark nullable fields (`productGroup`, `measureSize`, variant details); the OpenAPI tests
check what a non-null value must be. Numbers match numbers whether int or float.

`measureSize` is a map from axis to number: the example shows a mug's {"D", "H"}, flat goods
answer {"W", "H"}. Under such map keys only the value types are compared.
"""

from __future__ import annotations

from typing import Any


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    raise TypeError(f"not a JSON value: {value!r}")


MAP_KEYS = frozenset({"measureSize"})


def shape_mismatches(expected: Any, actual: Any, path: str = "$") -> list[str]:
    """Every place where `actual` differs in shape from `expected`, as readable lines."""
    if expected is None or actual is None:
        return []
    kind, actual_kind = json_type(expected), json_type(actual)
    if kind != actual_kind:
        return [f"{path}: expected {kind}, got {actual_kind}"]
    if kind == "object" and path.rpartition(".")[2] in MAP_KEYS and expected:
        model = next(iter(expected.values()))
        return [p for k, v in actual.items() for p in shape_mismatches(model, v, f"{path}.{k}")]
    if kind == "object":
        return _object_mismatches(expected, actual, path)
    if kind == "array" and expected:
        # The example's first element is the model of every element.
        return [
            problem
            for index, element in enumerate(actual)
            for problem in shape_mismatches(expected[0], element, f"{path}[{index}]")
        ]
    return []


def _object_mismatches(expected: dict, actual: dict, path: str) -> list[str]:
    problems = [f"{path}: missing key {key!r}" for key in expected if key not in actual]
    problems += [f"{path}: unexpected key {key!r}" for key in actual if key not in expected]
    for key in expected.keys() & actual.keys():
        problems += shape_mismatches(expected[key], actual[key], f"{path}.{key}")
    return problems
