"""Query depth and complexity limits, as graphql-core validation rules."""

from __future__ import annotations

from graphene.validation import depth_limit_validator
from graphql import (
    FieldNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    IntValueNode,
    OperationDefinitionNode,
    SelectionSetNode,
    ValidationContext,
    ValidationRule,
)

# List fields without a ``limit`` argument and how many items they return at most.
LIST_SIZES = {"presets": 10, "outputs": 10, "ladder": 5, "files": 1, "errorLines": 1}
# Fields whose ``limit`` argument sizes the list under them, and its default.
LIMITED_DEFAULTS = {"assets": 50, "jobs": 50}
MAX_LIMIT = 200


def _multiplier(field: FieldNode, nested: bool) -> int:
    name = field.name.value
    for arg in field.arguments or ():
        if arg.name.value == "limit":
            # A variable is only known at execution; assume the largest allowed page.
            return int(arg.value.value) if isinstance(arg.value, IntValueNode) else MAX_LIMIT
    if name in LIMITED_DEFAULTS:
        return 20 if (nested and name == "jobs") else LIMITED_DEFAULTS[name]
    return LIST_SIZES.get(name, 1)


def complexity_limit_validator(max_cost: int) -> type[ValidationRule]:
    """Rejects operations whose estimated resolved-field count exceeds ``max_cost``: each field
    costs 1, times the size of every list above it (a list's ``limit`` or its default)."""

    class ComplexityLimit(ValidationRule):
        def enter_operation_definition(self, node: OperationDefinitionNode, *_: object) -> None:
            cost = self._cost(node.selection_set, 1, False, set())
            if cost > max_cost:
                name = node.name.value if node.name else "anonymous"
                self.report_error(
                    GraphQLError(
                        f"'{name}' is too complex: about {cost} fields to resolve, the limit is "
                        f"{max_cost}; ask for smaller pages (limit) or fewer nested fields",
                        node,
                    )
                )

        def _cost(
            self, selections: SelectionSetNode | None, scale: int, nested: bool, seen: set[str]
        ) -> int:
            if selections is None:
                return 0
            total = 0
            for selection in selections.selections:
                if isinstance(selection, FieldNode):
                    if selection.name.value.startswith("__"):
                        continue  # introspection (GraphiQL) is cheap and fixed
                    inner = scale * _multiplier(selection, nested)
                    total += scale + self._cost(selection.selection_set, inner, True, seen)
                elif isinstance(selection, InlineFragmentNode):
                    total += self._cost(selection.selection_set, scale, nested, seen)
                elif isinstance(selection, FragmentSpreadNode):
                    name = selection.name.value
                    fragment = self.context.get_fragment(name)
                    if fragment is not None and name not in seen:
                        total += self._cost(fragment.selection_set, scale, nested, seen | {name})
            return total

    return ComplexityLimit


def limit_rules(max_depth: int, max_cost: int) -> list[type[ValidationRule]]:
    return [depth_limit_validator(max_depth), complexity_limit_validator(max_cost)]


__all__ = ["ValidationContext", "limit_rules"]
