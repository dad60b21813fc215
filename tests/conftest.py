import pytest
import torch


@pytest.fixture
def f64():
    """Run a test in float64 and restore the default afterwards."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def zscore(estimate: float, truth: float, stderr: float) -> float:
    return abs(estimate - truth) / stderr
