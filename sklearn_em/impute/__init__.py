"""Imputation of missing values with the package's mixtures."""

from ._gaussian_mixture import GaussianMixtureImputer

__all__ = ["GaussianMixtureImputer"]
