import pytest

matplotlib = pytest.importorskip("matplotlib")
matplotlib.use("Agg")


@pytest.fixture
def pyplot():
    """matplotlib.pyplot on Agg; closes the figures a test opened."""
    import matplotlib.pyplot as plt

    yield plt
    plt.close("all")
