"""Probabilistic black boxes: attentive neural process, exact GP, operator ensembles, and the
SoftC PDE penalty."""

from lawful.models.anp import (
    ANPOutput,
    AttentiveNeuralProcess,
    combine_samples,
    load_published_state_dict,
)
from lawful.models.ensemble import ensemble_belief
from lawful.models.gp import FittedGP, fit_gp, gp_belief, gp_predict
from lawful.models.softc import Flux, diffusive_flux, pde_residual, softc_penalty

__all__ = [
    "ANPOutput",
    "AttentiveNeuralProcess",
    "FittedGP",
    "Flux",
    "combine_samples",
    "diffusive_flux",
    "ensemble_belief",
    "fit_gp",
    "gp_belief",
    "gp_predict",
    "load_published_state_dict",
    "pde_residual",
    "softc_penalty",
]
