"""A PDE and an experiment of your own, in one file: ``lawful run decay --plugin THIS_FILE``.

The heat equation u_t = nu u_xx on [0, 1] with u = 0 at both ends, from a random sine series;
its exact solution decays each mode at its own rate. lawful trains the boundary methods on it
(FNO, FNO+overwrite, FNO+data, BOON) and writes metrics.json, report.md and figures.
"""

import torch

from lawful.constraints.boundary import BoundaryConditions, Dirichlet
from lawful.experiments import BoundaryExperiment, Task, register
from lawful.pdes import BoundaryProblem, Solution


def sample_decay(num_samples, x, times, generator, viscosity=0.05, num_modes=4):
    """u(x, t) = sum_k b_k sin(k pi x) exp(-nu k^2 pi^2 t), b_k ~ U[-1, 1] / k."""
    k = torch.arange(1, num_modes + 1, dtype=torch.float64)  # (K,)
    b = (2 * torch.rand(num_samples, num_modes, generator=generator, dtype=torch.float64) - 1) / k
    modes = torch.sin(torch.pi * k[:, None] * x)  # (K, X)
    decay = torch.exp(-viscosity * (torch.pi * k) ** 2 * times[:, None])  # (T, K)
    frames = torch.einsum("nk,tk,kx->ntx", b, decay, modes)  # (N, T, X)
    walls = torch.zeros(num_samples, times.numel(), dtype=torch.float64)  # u = 0: (N, T)
    return Solution(b @ modes, frames, walls, walls.clone(), {})


decay = BoundaryProblem(
    "decay",
    BoundaryConditions(Dirichlet(), Dirichlet()),
    frame_spacing=0.02,
    sample=sample_decay,
)
register(BoundaryExperiment("decay", decay, tasks=(Task("single-step"), Task("multi-step"))))
