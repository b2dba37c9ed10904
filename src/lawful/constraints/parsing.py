"""Boundary conditions written as text, as the command line takes them.

``"dirichlet,neumann:2"`` is Dirichlet at the left end and Neumann with the order-2 one-sided
stencil at the right; ``"periodic"`` (or ``"periodic,periodic"``) makes both ends periodic. An
``x=`` prefix names the axis (the only one, for now). The values are placeholders (0): the data
comes with each sample.
"""

from __future__ import annotations

from lawful.constraints.boundary import (
    BoundaryCondition,
    BoundaryConditions,
    Dirichlet,
    Neumann,
    Periodic,
)

__all__ = ["CONDITION_KINDS", "parse_condition", "parse_conditions"]

CONDITION_KINDS = ("dirichlet", "neumann[:ORDER]", "periodic")


def parse_condition(text: str) -> BoundaryCondition:
    """One end's condition from ``dirichlet``, ``neumann``, ``neumann:ORDER`` or ``periodic``."""
    name, _, order = text.strip().lower().partition(":")
    if name == "dirichlet" and not order:
        return Dirichlet()
    if name == "periodic" and not order:
        return Periodic()
    if name == "neumann":
        if not order:
            return Neumann()
        if order.isdigit():
            return Neumann(0.0, int(order))  # Neumann checks the order's range
    raise ValueError(
        f"unknown boundary condition {text.strip()!r}; use {', '.join(CONDITION_KINDS)}"
    )


def parse_conditions(text: str) -> BoundaryConditions:
    """Both ends' conditions from ``[x=]LEFT,RIGHT`` (or ``[x=]periodic``)."""
    axis, separator, kinds = text.partition("=")
    if not separator:
        axis, kinds = "x", text
    if axis.strip().lower() != "x":
        raise ValueError(
            f"conditions {text!r}: only the x axis can be constrained so far, got {axis!r}"
        )
    ends = kinds.split(",")
    if any(not kind.strip() for kind in ends):
        raise ValueError(f"conditions {text!r}: an empty entry; give LEFT,RIGHT")
    if len(ends) == 1 and ends[0].strip().lower() == "periodic":
        ends *= 2
    if len(ends) != 2:
        raise ValueError(
            f"conditions {text!r}: give the two ends as LEFT,RIGHT (e.g. dirichlet,neumann:2)"
        )
    return BoundaryConditions(*(parse_condition(end) for end in ends))
