"""Neural operators: Fourier neural operators and their BOON boundary corrections."""

from lawful.operators.boon import (
    BoundaryCorrectedFNO,
    BoundaryCorrectedFNO1d,
    BoundaryCorrectedFNO2d,
    BoundaryOverwrite,
    boundary_responses,
    correct_boundary,
)
from lawful.operators.fno import (
    FNO1d,
    FNO2d,
    FNOxt,
    FNOxy,
    FNOxyt,
    FourierLayer,
    FourierNeuralOperator,
    SpectralConv,
    SpectralConv1d,
    SpectralConv2d,
)
from lawful.operators.neuralop import BoundaryCorrectedNeuralopFNO

__all__ = [
    "BoundaryCorrectedFNO",
    "BoundaryCorrectedFNO1d",
    "BoundaryCorrectedFNO2d",
    "BoundaryCorrectedNeuralopFNO",
    "BoundaryOverwrite",
    "FNO1d",
    "FNO2d",
    "FNOxt",
    "FNOxy",
    "FNOxyt",
    "FourierLayer",
    "FourierNeuralOperator",
    "SpectralConv",
    "SpectralConv1d",
    "SpectralConv2d",
    "boundary_responses",
    "correct_boundary",
]
