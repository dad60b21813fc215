"""Data for generative modelling: the toy and shipped data sets (:mod:`.toys`), the user's
files (:mod:`.files`), the checks and fingerprints of training data (:mod:`.checks`) and the
batches that training draws from it (:mod:`.batches`)."""

from .batches import DataBatch, batch_sampler
from .checks import (
    DATASET_ITEMS_HASHED,
    as_data,
    fingerprint,
    holdout_rows,
    holdout_split,
    split_holdout,
)
from .dynamics import (
    StochasticAllenCahn,
    StochasticDynamics,
    StochasticLorenz63,
    TwoScaleLorenz96,
)
from .files import FILE_FORMATS, DataFileError, read_file
from .navier_stokes import StochasticNavierStokes
from .toys import (
    DATASETS,
    DIGITS_TRAIN,
    TOYS,
    Dequantized,
    LogitTransform,
    checkerboard,
    digits,
    digits_labels,
    eight_gaussians,
    gmm_data,
    gmm_data_distribution,
    load,
    moons,
    pinwheel,
    spirals,
    true_nll,
)

__all__ = [
    "DATASETS",
    "DATASET_ITEMS_HASHED",
    "DIGITS_TRAIN",
    "FILE_FORMATS",
    "TOYS",
    "DataBatch",
    "DataFileError",
    "Dequantized",
    "LogitTransform",
    "StochasticAllenCahn",
    "StochasticDynamics",
    "StochasticLorenz63",
    "StochasticNavierStokes",
    "TwoScaleLorenz96",
    "as_data",
    "batch_sampler",
    "checkerboard",
    "digits",
    "digits_labels",
    "eight_gaussians",
    "fingerprint",
    "gmm_data",
    "gmm_data_distribution",
    "holdout_rows",
    "holdout_split",
    "load",
    "moons",
    "pinwheel",
    "read_file",
    "spirals",
    "split_holdout",
    "true_nll",
]
