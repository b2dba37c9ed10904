"""The three training objectives: each trains, and the constrained one is the posterior density."""

import math

import pytest
import torch
from torch.distributions import MultivariateNormal
from torch.utils.data import DataLoader, TensorDataset

from lawful.beliefs import GaussianBelief
from lawful.constraints.conservation import LinearConstraint
from lawful.constraints.quadrature import trapezoid_weights
from lawful.constraints.update import condition
from lawful.data.sampling import make_function_sets
from lawful.models.anp import AttentiveNeuralProcess
from lawful.pdes import get_conservation_problem
from lawful.training.neural_process import NeuralProcessModule, per_time_mass_weights
from lawful.training.trainer import TrainSettings, fit

PROBLEM = get_conservation_problem("pme")


def _batch(num_functions=8, seed=0):
    generator = torch.Generator().manual_seed(seed)
    sets = make_function_sets(PROBLEM, PROBLEM.sample_params(num_functions, generator), generator)
    return (
        sets.input_contexts,
        sets.output_contexts,
        sets.input_targets,
        sets.output_targets,
        sets.params.float(),
    )


def _module(objective, **options):
    torch.manual_seed(0)
    model = AttentiveNeuralProcess(hidden_dim=16, latent_dim=16, num_heads=2)
    return NeuralProcessModule(model, PROBLEM, objective=objective, learning_rate=3e-3, **options)


@pytest.mark.parametrize("objective", ["elbo", "softc", "probconserv"])
def test_each_objective_trains(objective):
    module, batch = _module(objective), _batch()
    optimizer = module.configure_optimizers()
    losses = []
    for _ in range(30):
        loss = module._loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    assert sum(losses[-5:]) / 5 < sum(losses[:5]) / 5 - 0.1


def test_constraint_precision_is_learned_or_fixed():
    batch = _batch()
    learned = _module("probconserv")
    learned._loss(batch).backward()
    assert learned.log_constraint_precision.grad is not None
    assert float(learned.log_constraint_precision.grad.abs()) > 0
    fixed = _module("probconserv", log_constraint_precision=4.0, learn_constraint_precision=False)
    fixed._loss(batch).backward()
    assert fixed.log_constraint_precision.grad is None
    assert float(fixed.log_constraint_precision) == 4.0


def test_per_time_weights_are_trapezoid_rows():
    positions = torch.sort(torch.rand(3, 4, 10), dim=-1).values
    weights = per_time_mass_weights(positions)  # (3, 4, 1, 10)
    torch.testing.assert_close(weights[1, 2, 0], trapezoid_weights(positions[1, 2]))


def test_cosine_decay_anneals_to_zero_over_the_run(tmp_path):
    module = _module("elbo", cosine_decay=True)
    loader = DataLoader(TensorDataset(*_batch(num_functions=8)), batch_size=4)  # 2 steps/epoch
    fit(module, loader, TrainSettings(max_epochs=3, progress=False), tmp_path)
    (scheduler,) = module.trainer.lr_scheduler_configs
    assert scheduler.interval == "step"
    assert scheduler.scheduler.T_max == 6
    assert scheduler.scheduler.base_lrs == [3e-3]
    assert module.trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(0.0, abs=1e-12)


def test_constant_rate_by_default():
    assert isinstance(_module("elbo").configure_optimizers(), torch.optim.Adam)


def test_probconserv_loss_is_minus_the_conditioned_density_plus_the_kl():
    """The constrained loss, rebuilt by another route: condition each time slice's Gaussian on
    its own trapezoid mass (noise exp(-c)) and take the dense posterior's log-density."""
    precision = 2.0
    module = _module(
        "probconserv", log_constraint_precision=precision, learn_constraint_precision=False
    ).double()
    batch = [tensor.double() for tensor in _batch()]
    torch.manual_seed(3)
    loss = module._loss(batch)
    torch.manual_seed(3)  # the same latent draw
    output = module.model(*batch[:4], num_samples=1)
    target_x, target_y = batch[2], batch[3]
    num_functions, points = target_x.shape[:2]
    per_time = (num_functions, module.num_target_times, points // module.num_target_times)
    truth = target_y[..., 0].reshape(per_time)
    rows = trapezoid_weights(target_x[..., 1].reshape(per_time)).unsqueeze(-2)  # (B, T, 1, P)
    mass = (rows @ truth.unsqueeze(-1)).squeeze(-1)  # (B, T, 1): the truth's own mass
    prior = GaussianBelief.diagonal(
        output.mean[0].reshape(per_time), output.std[0].square().reshape(per_time)
    )
    posterior = condition(prior, LinearConstraint(rows, mass, math.exp(-precision)))
    density = MultivariateNormal(posterior.mean, posterior.covariance.to_dense()).log_prob(truth)
    expected = -density.sum(-1).mean() / points + output.kl().mean() / points
    torch.testing.assert_close(loss, expected, rtol=1e-8, atol=0)
