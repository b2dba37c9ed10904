"""Context/target sampling: lattice structure, time strata, exact outputs, seeding."""

import pytest
import torch

from lawful.data import FunctionSets, evaluation_grid, make_function_sets, sample_inputs
from lawful.pdes import CONSERVATION_PROBLEMS, ConservationProblem, get_conservation_problem

PROBLEMS = list(CONSERVATION_PROBLEMS.values())
PROBLEM_IDS = list(CONSERVATION_PROBLEMS)


def _seeded(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _fractions_of_t_domain(problem: ConservationProblem, t: torch.Tensor) -> torch.Tensor:
    t_low, t_high = problem.t_domain
    return (t - t_low) / (t_high - t_low)


@pytest.mark.parametrize("problem", PROBLEMS, ids=PROBLEM_IDS)
def test_lattice_is_time_major_with_shared_sorted_positions(problem: ConservationProblem):
    inputs = sample_inputs(problem, 6, _seeded(0), num_times=4, num_positions=5)
    lattice = inputs.reshape(6, 4, 5, 2)  # (functions, times, positions, (t, x))
    t, x = lattice[..., 0], lattice[..., 1]
    assert torch.equal(t, t[:, :, :1].expand_as(t))  # one time per row of positions
    assert torch.equal(x, x[:, :1, :].expand_as(x))  # the same positions at every time
    assert bool((x[:, 0].diff(dim=1) > 0).all())
    x_low, x_high = problem.x_domain
    assert x_low <= float(x.min()) and float(x.max()) <= x_high


@pytest.mark.parametrize("problem", PROBLEMS, ids=PROBLEM_IDS)
def test_stratified_times_fall_one_in_each_tenth_and_fill_it_uniformly(
    problem: ConservationProblem,
):
    inputs = sample_inputs(problem, 400, _seeded(1), time_sampling="stratified")
    times = inputs.reshape(400, 10, 10, 2)[:, :, 0, 0]  # (functions, times)
    scaled = 10 * _fractions_of_t_domain(problem, times)
    assert torch.equal(scaled.floor(), torch.arange(10.0, dtype=scaled.dtype).expand(400, -1))
    # Within its tenth a time is uniform: mean 1/2 and variance 1/12 of the tenth's width.
    within = scaled - scaled.floor()
    assert float(within.mean()) == pytest.approx(0.5, abs=0.01)
    assert float(within.var()) == pytest.approx(1 / 12, abs=0.005)


def test_uniform_times_are_sorted_in_the_domain_but_not_stratified():
    problem = get_conservation_problem("pme")
    inputs = sample_inputs(problem, 50, _seeded(2), time_sampling="uniform")
    times = inputs.reshape(50, 10, 10, 2)[:, :, 0, 0]  # (functions, times)
    assert bool((times.diff(dim=1) >= 0).all())
    assert float(times.min()) >= 0 and float(times.max()) <= 1
    one_per_tenth = (10 * times).floor() == torch.arange(10.0, dtype=times.dtype)
    assert not bool(one_per_tenth.all(dim=1).any())  # chance of stratification: 10!/10^10 each


@pytest.mark.parametrize("problem", PROBLEMS, ids=PROBLEM_IDS)
def test_outputs_are_the_exact_solution_at_the_stored_inputs(problem: ConservationProblem):
    params = torch.tensor([*problem.test_params, *problem.param_range], dtype=torch.float64)
    sets = make_function_sets(problem, params, _seeded(3))
    assert sets.input_contexts.dtype == torch.float32
    for inputs, outputs in [
        (sets.input_contexts, sets.output_contexts),
        (sets.input_targets, sets.output_targets),
    ]:
        inputs64 = inputs.double()
        expected = problem.solution(params[:, None], inputs64[..., 0], inputs64[..., 1])
        assert torch.equal(outputs[..., 0], expected.float())
    assert torch.equal(sets.params, params.float()[:, None])
    assert len(sets) == len(params)


def test_contexts_and_targets_are_drawn_independently():
    problem = get_conservation_problem("burgers")
    sets = make_function_sets(problem, torch.tensor([1.0, 2.0]), _seeded(4))
    assert not torch.equal(sets.input_contexts[..., 1], sets.input_targets[..., 1])
    context_times = sets.input_contexts.reshape(2, 10, 10, 2)[:, :, 0, 0]
    target_times = sets.input_targets.reshape(2, 10, 10, 2)[:, :, 0, 0]
    assert not torch.equal(context_times, target_times)


def test_same_seed_same_sets_and_different_seeds_differ():
    problem = get_conservation_problem("advection")
    params = torch.tensor([1.0, 3.0])
    first = make_function_sets(problem, params, _seeded(5))
    again = make_function_sets(problem, params, _seeded(5))
    other = make_function_sets(problem, params, _seeded(6))
    for name in ("input_contexts", "output_contexts", "input_targets", "output_targets"):
        assert torch.equal(getattr(first, name), getattr(again, name))
    assert not torch.equal(first.input_contexts, other.input_contexts)
    assert not torch.equal(first.input_targets, other.input_targets)


def test_evaluation_grid_holds_equally_spaced_points_at_one_time():
    problem = get_conservation_problem("burgers")
    grid = evaluation_grid(problem, 0.5, num_x=5, dtype=torch.float64)
    expected = torch.tensor(
        [[0.5, -1.0], [0.5, -0.5], [0.5, 0.0], [0.5, 0.5], [0.5, 1.0]], dtype=torch.float64
    )
    assert torch.equal(grid, expected)
    default = evaluation_grid(get_conservation_problem("pme"), 0.5)
    assert default.dtype == torch.float32
    assert torch.equal(default[:, 1], torch.linspace(0, 1, 201, dtype=torch.float64).float())


def test_bad_arguments_name_the_problem():
    problem = get_conservation_problem("heat")
    with pytest.raises(ValueError, match="params must be one-dimensional"):
        make_function_sets(problem, torch.ones(2, 1))
    with pytest.raises(ValueError, match="time_sampling must be 'stratified' or 'uniform'"):
        sample_inputs(problem, 2, time_sampling="latin")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="num_x >= 2"):
        evaluation_grid(problem, 0.5, num_x=1)


def test_function_sets_reject_outputs_that_do_not_match_inputs():
    inputs = torch.zeros(3, 4, 2)
    with pytest.raises(ValueError, match=r"output_targets must have shape \(3, 4, 1\)"):
        FunctionSets(inputs, torch.zeros(3, 4, 1), inputs, torch.zeros(3, 5, 1), torch.zeros(3, 1))
    with pytest.raises(ValueError, match="input_contexts must have shape"):
        FunctionSets(
            inputs[:2], torch.zeros(2, 4, 1), inputs, torch.zeros(3, 4, 1), torch.zeros(3, 1)
        )
