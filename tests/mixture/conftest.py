"""Fixtures shared by the mixture tests."""

import pytest

from sklearn_em.mixture import _suffstats


@pytest.fixture
def blas_limit_sets(monkeypatch):
    """The list to which every setting of the BLAS window's limit appends."""
    window_type = type(_suffstats._BLAS_WINDOW)
    calls = []
    original = window_type._set

    def counting_set(self):
        calls.append(1)
        original(self)

    monkeypatch.setattr(window_type, "_set", counting_set)
    return calls


@pytest.fixture
def workspace_requests(monkeypatch):
    """``record(module, name)``: the list to which every request of
    ``module``'s workspace buffer ``name`` appends its shape."""

    def record(module, name):
        shapes = []
        original = module.workspace

        def recording(buffer, shape, dtype):
            if buffer == name:
                shapes.append(shape)
            return original(buffer, shape, dtype)

        monkeypatch.setattr(module, "workspace", recording)
        return shapes

    return record
