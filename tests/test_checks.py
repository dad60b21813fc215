"""Tests of the shared argument checks (interpolants.checks) and of interpolants.progress."""

from __future__ import annotations

import math

import pytest
import torch

from interpolants import checks
from interpolants.progress import progress_bar

CASES = [  # (check, a good value, bad values, the message)
    (
        lambda v: checks.boolean("centered", v),
        0,
        ["no", "False", 2, 1.0, None],
        "centered must be True or False",
    ),
    (lambda v: checks.int_at_least("k", v, 2), 2, [1, True, 2.0, "3"], "k must be an integer >= 2"),
    (
        lambda v: checks.positive_int("n", v),
        1,
        [0, True, 1.5, None],
        "n must be a positive integer",
    ),
    (lambda v: checks.positive_float("s", v), 0.5, [0, -1.0, True, "1"], "s must be a positive"),
    (
        lambda v: checks.finite_float("b", v),
        -2.0,
        [math.inf, math.nan, False],
        "b must be a finite",
    ),
    (
        lambda v: checks.fraction("p", v),
        0.25,
        [0, 1, 1.5, "0.5"],
        r"p must be a number in \(0, 1\)",
    ),
]


@pytest.mark.parametrize(("check", "good", "bad", "message"), CASES)
def test_checks_return_good_values_and_name_the_argument_of_bad_ones(check, good, bad, message):
    assert check(good) == good
    for value in bad:
        with pytest.raises(ValueError, match=message):
            check(value)


def test_float_dtype_takes_float32_and_float64_only():
    assert checks.float_dtype(torch.float64) is torch.float64
    with pytest.raises(ValueError, match=r"dtype must be torch\.float32 or torch\.float64"):
        checks.float_dtype(torch.float16)


def test_finite_initial_names_the_walkers_outside_the_support():
    class State:
        log_prob = torch.tensor([0.0, -math.inf, 1.0])
        grad = torch.tensor([[0.0], [0.0], [math.nan]])

    with pytest.raises(ValueError, match=r"mala: .* at 2 initial walker\(s\), indices \[1, 2\]"):
        checks.finite_initial(State(), "mala")


def test_progress_bar_wraps_an_iterable_and_does_nothing_when_disabled(capsys):
    """The bar comes from the app (tqdm, set by the package's __init__) and is drawn on
    stderr; disabled, it is silent and still iterates and counts."""
    assert list(progress_bar(3, True, "steps", leave=True, iterable=range(3))) == [0, 1, 2]
    assert "steps" in capsys.readouterr().err
    bar = progress_bar(10, False, "off", initial=2)
    bar.update(1)
    bar.set_postfix(loss="0.1")
    bar.close()
    assert bar.n == 3 and list(progress_bar(2, False, iterable="ab")) == ["a", "b"]
    assert capsys.readouterr().err == ""
