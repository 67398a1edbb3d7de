"""Visualisations in scikit-learn's Display style.

matplotlib is an optional dependency (``pip install "sklearn-em[plot]"``):
importing this module does not import it; drawing does, with a clear message
when it is missing.

- :class:`MixtureDisplay`: data coloured by responsibilities, with each
  Gaussian component's 1- and 2-sigma ellipses.
- :class:`PrototypeDisplay`: the means of a mixture as images.
- :class:`LatentSpaceDisplay`: draws ``z ~ q(z|x)`` of a 2-D VAE coloured by
  label, over the prior's contours.
- :class:`ManifoldDisplay`: decoded images on a grid covering the prior.
- :class:`ConvergenceDisplay`: lower bound or loss per iteration.
- :class:`InformationCriterionDisplay`: BIC (AIC, ICL) against the number of
  components, one line per covariance structure, the selected model marked.
"""

from ._convergence import ConvergenceDisplay
from ._latent import LatentSpaceDisplay, ManifoldDisplay
from ._mixture import MixtureDisplay
from ._prototypes import PrototypeDisplay
from ._selection import InformationCriterionDisplay

__all__ = [
    "ConvergenceDisplay",
    "InformationCriterionDisplay",
    "LatentSpaceDisplay",
    "ManifoldDisplay",
    "MixtureDisplay",
    "PrototypeDisplay",
]
