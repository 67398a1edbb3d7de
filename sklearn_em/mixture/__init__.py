"""Mixture models fitted by Expectation-Maximisation.

``_suffstats`` is the sufficient-statistics engine (chunked map, reduction),
``_base`` the EM loop every mixture shares, and each remaining module one
model's maths.
"""

from ._base import BaseMixtureEM
from ._bernoulli import BernoulliMixtureEM
from ._gaussian import GaussianMixtureEM

__all__ = ["BaseMixtureEM", "BernoulliMixtureEM", "GaussianMixtureEM"]
