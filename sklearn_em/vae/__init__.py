"""Variational auto-encoder, in NumPy, as a scikit-learn transformer."""

from ._vae import VAETransformer

__all__ = ["VAETransformer"]
