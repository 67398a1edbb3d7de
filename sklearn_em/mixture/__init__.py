"""Mixture models fitted by Expectation-Maximisation.

``_suffstats`` is the sufficient-statistics engine (chunked map, reduction),
``_base`` the EM loop every mixture shares, ``_selection`` the search over
the number of components and the covariance structure, and each remaining
module one model's maths.
"""

from ._base import BaseMixtureEM
from ._bernoulli import BernoulliMixtureEM
from ._gaussian import GaussianMixtureEM
from ._selection import BernoulliMixtureIC, GaussianMixtureIC

__all__ = [
    "BaseMixtureEM",
    "BernoulliMixtureEM",
    "BernoulliMixtureIC",
    "GaussianMixtureEM",
    "GaussianMixtureIC",
]
