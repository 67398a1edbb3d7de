"""sklearn-em: latent-variable models for scikit-learn.

Mixtures learned by Expectation-Maximisation (with or without missing
values), an imputer built on them, and a variational auto-encoder learned by
variational inference, each a scikit-learn estimator.
"""

from .impute import GaussianMixtureImputer
from .mixture import (
    BernoulliMixtureEM,
    BernoulliMixtureIC,
    GaussianMixtureEM,
    GaussianMixtureIC,
)
from .vae import VAETransformer

__version__ = "0.1.0"

__all__ = [
    "BernoulliMixtureEM",
    "BernoulliMixtureIC",
    "GaussianMixtureEM",
    "GaussianMixtureIC",
    "GaussianMixtureImputer",
    "VAETransformer",
    "__version__",
]
