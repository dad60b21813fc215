import pytest
import torch


@pytest.fixture
def f64():
    """Run a test in float64 and restore the default afterwards."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module of tiny tensors: more only add contention on a shared
    machine (measured: 76 s for test_samplers.py with 2 threads under load, 23 s with one).
    A module opts in with ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def zscore(estimate: float, truth: float, stderr: float) -> float:
    return abs(estimate - truth) / stderr
