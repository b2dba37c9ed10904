import itertools

import pytest
import torch

from lawful.beliefs import GaussianBelief
from lawful.constraints.boundary import (
    BoundaryConditions,
    Dirichlet,
    Neumann,
    Periodic,
    apply_boundary_conditions,
    boundary_constraint,
    boundary_residuals,
    one_sided_derivative,
    one_sided_derivative_weights,
)
from lawful.constraints.update import condition
from lawful.constraints.walls import (
    Walls,
    apply_walls,
    wall_equations,
    wall_residuals,
    walls_constraint,
)

NX, NY, BATCH = 9, 7, 3
SPACINGS = (1 / (NX - 1), 0.5 / (NY - 1))
TOLERANCE = {torch.float32: 1e-5, torch.float64: 1e-12}


def _data(dtype, along, frames=()):
    return torch.randn(BATCH, along, *frames, dtype=dtype)


def _axis(kind, along, dtype, frames=(), order=2):
    """Conditions of one kind on both walls of an axis, with data per point (and frame)."""
    if kind == "periodic":
        return BoundaryConditions(Periodic(), Periodic())
    make = Dirichlet if kind == "dirichlet" else lambda value: Neumann(value, order)
    return BoundaryConditions(make(_data(dtype, along, frames)), make(_data(dtype, along, frames)))


def _agreeing(walls):
    """The walls with each Dirichlet y wall's corner data copied from a Dirichlet x wall."""
    data = {}
    for y_name, index in (("y_left", 0), ("y_right", -1)):
        y_wall = walls.condition(y_name)
        if not isinstance(y_wall, Dirichlet):
            continue
        value = y_wall.value.clone()
        for x_name, corner in (("x_left", 0), ("x_right", -1)):
            x_wall = walls.condition(x_name)
            if isinstance(x_wall, Dirichlet):
                value[:, corner] = x_wall.value[:, index]
        data[y_name] = value
    return walls.with_values(**data)


def assert_meets_every_wall(field, walls, dtype):
    """Every wall's residual at rounding level where the corner rule imposes it; Dirichlet and
    periodic walls exactly. Neumann residuals are derivatives: compare h * residual."""
    scale = 1 + float(field.abs().max())
    spacing = {"x": SPACINGS[0], "y": SPACINGS[1]}
    for name, residual in wall_residuals(field, walls, SPACINGS).items():
        if isinstance(walls.condition(name), Neumann):
            assert float(residual.abs().max()) * spacing[name[0]] <= TOLERANCE[dtype] * scale
        else:
            assert bool((residual == 0).all()), name


KINDS = ["dirichlet", "neumann", "periodic"]


@pytest.mark.parametrize(("x_kind", "y_kind"), list(itertools.product(KINDS, KINDS)))
def test_corner_rule_gives_each_corner_the_winners_condition(x_kind, y_kind):
    dtype = torch.float64
    walls = _agreeing(Walls(_axis(x_kind, NY, dtype), _axis(y_kind, NX, dtype)))
    priority = {"dirichlet": 2, "neumann": 1, "periodic": 0}
    x_wins = priority[x_kind] >= priority[y_kind]
    for x_side, y_side in itertools.product(("left", "right"), repeat=2):
        assert walls.x_wins(x_side, y_side) == x_wins
    field = torch.randn(BATCH, 2, NX, NY, dtype=dtype)
    result = apply_walls(field, walls, SPACINGS)
    assert_meets_every_wall(result, walls, dtype)
    torch.testing.assert_close(result[:, :, 1:-1, 1:-1], field[:, :, 1:-1, 1:-1], rtol=0, atol=0)
    # The winner's condition holds at the corner itself, by value.
    winner, axis_dim = (walls.x, 2) if x_wins else (walls.y, 3)
    corner = result[:, :, 0, 0]
    if isinstance(winner.left, Dirichlet):
        expected = winner.left.value[:, 0].unsqueeze(1).expand_as(corner)
        torch.testing.assert_close(corner, expected, rtol=0, atol=0)
    elif isinstance(winner.left, Neumann):
        derivative = one_sided_derivative(result, SPACINGS[axis_dim - 2], 2, "left", axis_dim)
        torch.testing.assert_close(
            derivative[:, :, 0], winner.left.value[:, 0].unsqueeze(1).expand_as(corner)
        )
    else:  # periodic pairs on both axes: the x pair, and all four corners equal
        assert x_kind == y_kind == "periodic"
        corners = result[:, :, [0, 0, -1, -1], [0, -1, 0, -1]]
        torch.testing.assert_close(corners, corners[..., :1].expand_as(corners), rtol=0, atol=0)


def test_the_losing_walls_condition_is_not_imposed_at_the_corner():
    # Dirichlet x walls beat Neumann y walls: the y stencil fails at the corners (by the rule),
    # and wall_residuals reports zero there.
    dtype = torch.float64
    walls = Walls(_axis("dirichlet", NY, dtype), _axis("neumann", NX, dtype))
    result = apply_walls(torch.randn(BATCH, 1, NX, NY, dtype=dtype), walls, SPACINGS)
    raw = boundary_residuals(result, walls.y, SPACINGS[1])[0]  # (batch, 1, nx): y_left
    assert float(raw[..., 0].abs().min()) > 1e-6
    assert float(raw[..., 1:-1].abs().max()) < 1e-12
    reported = wall_residuals(result, walls, SPACINGS)["y_left"]
    assert bool((reported[..., [0, -1]] == 0).all())


MIXED = {
    "dirichlet": ("dirichlet", "dirichlet"),
    "dirichlet-neumann": ("dirichlet", "neumann"),
    "neumann-dirichlet": ("neumann", "dirichlet"),
    "neumann": ("neumann", "neumann"),
    "periodic-dirichlet": ("periodic", "dirichlet"),
    "neumann-periodic": ("neumann", "periodic"),
}


@pytest.mark.parametrize("name", list(MIXED))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("frames", [(), (4,)])
def test_apply_walls_meets_every_wall_batched_and_with_time(name, dtype, frames):
    x_kind, y_kind = MIXED[name]
    walls = _agreeing(Walls(_axis(x_kind, NY, dtype, frames), _axis(y_kind, NX, dtype, frames)))
    field = torch.randn(BATCH, 2, NX, NY, *frames, dtype=dtype)
    result = apply_walls(field, walls, SPACINGS)
    assert_meets_every_wall(result, walls, dtype)
    again = apply_walls(result, walls, SPACINGS)  # idempotent, to the dtype's round-off
    scale = 1 + float(result.abs().max())
    torch.testing.assert_close(again, result, rtol=0, atol=TOLERANCE[dtype] * scale)
    # Batched equals one sample at a time.
    for i in range(BATCH):
        data = {k: v[i : i + 1] for k, v in walls.data().items() if v is not None}
        single = apply_walls(field[i : i + 1], walls.with_values(**data), SPACINGS)
        torch.testing.assert_close(single, result[i : i + 1], rtol=0, atol=0)


def test_one_dimensional_walls_are_the_one_dimensional_conditions():
    conditions = BoundaryConditions(Dirichlet(0.4), Neumann(-1.0, 3))
    walls = Walls(conditions)
    field = torch.randn(2, 1, 11, dtype=torch.float64)
    expected = apply_boundary_conditions(field, walls.x, 0.1)
    torch.testing.assert_close(apply_walls(field, walls, 0.1), expected, rtol=0, atol=0)
    assert set(wall_residuals(field, walls, 0.1)) == {"x_left", "x_right"}
    one_d = boundary_constraint(conditions, 11, 0.1)
    constraint = walls_constraint(walls, (11,), 0.1)
    torch.testing.assert_close(constraint.weights, one_d.weights, rtol=0, atol=0)
    assert walls.with_values(left=1.0).x.left.value == 1.0


def _row_scale(condition, side, spacing):
    """``G u - b`` of a wall's row over its residual: 1, or ``sign h / w_0`` for Neumann."""
    if not isinstance(condition, Neumann):
        return 1.0
    w0 = float(one_sided_derivative_weights(condition.order)[0])
    return (1.0 if side == "left" else -1.0) * spacing / w0


@pytest.mark.parametrize("name", list(MIXED))
def test_constraint_rows_are_the_wall_residuals(name):
    dtype = torch.float64
    x_kind, y_kind = MIXED[name]
    walls = _agreeing(Walls(_axis(x_kind, NY, dtype), _axis(y_kind, NX, dtype)))
    constraint = walls_constraint(walls, (NX, NY), SPACINGS)
    field = torch.randn(BATCH, NX, NY, dtype=dtype)
    rows = field.flatten(1) @ constraint.weights.T - constraint.values  # (batch, k)
    residuals = wall_residuals(field.unsqueeze(1), walls, SPACINGS)
    equations = wall_equations(walls, (NX, NY), SPACINGS)
    expected = []
    for line in equations.lines:
        if line.equation.target is None:  # the periodic keep-the-sum: no row
            continue
        scale = _row_scale(walls.condition(line.name), line.side, SPACINGS[line.dim - 2])
        residual = residuals[line.name][:, 0].index_select(-1, line.along)  # (batch, k_line)
        expected.append(scale * residual)
    torch.testing.assert_close(rows, torch.cat(expected, -1), rtol=0, atol=1e-12)
    # Conditioning a belief over the flattened grid on the rows gives exact walls.
    belief = GaussianBelief.diagonal(field.flatten(1), torch.rand(BATCH, NX * NY).double() + 0.1)
    posterior = condition(belief, constraint).mean.view(BATCH, 1, NX, NY)
    for residual in wall_residuals(posterior, walls, SPACINGS).values():
        assert float(residual.abs().max()) < 1e-10


def test_time_dependent_data_give_one_row_set_per_frame():
    walls = Walls(
        BoundaryConditions(Dirichlet(torch.zeros(2, NY, 3)), Dirichlet(0.0)),
        BoundaryConditions(Neumann(torch.randn(2, NX, 3), 1), Dirichlet(0.0)),
    )
    constraint = walls_constraint(walls, (NX, NY), SPACINGS)
    assert constraint.values.shape == (2, 3, constraint.num_rows)
    torch.testing.assert_close(
        constraint.values[:, 1],
        walls_constraint(
            walls.with_values(x_left=torch.zeros(2, NY), y_left=walls.y.left.value[..., 1]),
            (NX, NY),
            SPACINGS,
        ).values,
    )


def test_bad_input_raises_naming_the_problem():
    walls = Walls(
        BoundaryConditions(Dirichlet(0.0), Neumann(0.0, 3)),
        BoundaryConditions(Dirichlet(0.0), Dirichlet(0.0)),
    )
    field = torch.randn(2, 1, NX, NY)
    with pytest.raises(ValueError, match=r"x walls: Dirichlet data at the left end.*got \(2, 9\)"):
        apply_walls(field, walls.with_values(x_left=torch.zeros(2, NX)), SPACINGS)
    with pytest.raises(ValueError, match="NaN"):
        walls.with_values(y_right=torch.tensor([0.0, float("nan")]))
    with pytest.raises(ValueError, match="disagree at the corner of x_left and y_left"):
        apply_walls(field, walls.with_values(y_left=torch.ones(2, NX)), SPACINGS)
    with pytest.raises(ValueError, match=r"disagree at the corner of x_left and y_right"):
        walls_constraint(
            walls.with_values(
                x_left=torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 2.0]).expand(2, NY)
            ),
            (NX, NY),
            SPACINGS,
        )
    with pytest.raises(ValueError, match=r"4 points along x is too short.*at least 5"):
        apply_walls(torch.randn(2, 1, 4, NY), walls, SPACINGS)
    with pytest.raises(ValueError, match="too short"):
        walls_constraint(walls, (4, NY), SPACINGS)
    with pytest.raises(ValueError, match="ambiguous"):
        walls.with_values(left=1.0)
    with pytest.raises(ValueError, match="one grid spacing per constrained axis"):
        apply_walls(field, walls, (0.1, 0.1, 0.1))
    with pytest.raises(ValueError, match="need a field"):
        apply_walls(torch.randn(2, 1, NX), walls, SPACINGS)


def test_corner_agreement_is_judged_on_the_walls_data_scale():
    """sin(pi y) is 1.2e-16, not 0, at y = 1: rounding of data of size 1, not a disagreement."""
    y = torch.linspace(0, 1, 9, dtype=torch.float64)
    profile = torch.sin(torch.pi * y).expand(2, 9)  # (batch, ny): 0 up to rounding at both ends
    walls = Walls(
        x=BoundaryConditions(Dirichlet(profile), Dirichlet()),
        y=BoundaryConditions(Dirichlet(), Dirichlet()),
    )
    walls.validate((2, 1, 7, 9))  # accepted
    off = profile.clone()
    off[:, -1] = 1e-6  # a real disagreement with the top wall's 0
    with pytest.raises(ValueError, match="disagree at the corner of x_left and y_right"):
        walls.with_values(x_left=off).validate((2, 1, 7, 9))
