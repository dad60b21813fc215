"""Make the breast-cancer table shipped as interpolants/targets/breast_cancer.csv.

Run once: ``python benchmarks/references/make_logistic_data.py`` (needs scikit-learn, which
is not a dependency of the package; the target reads only the CSV).

Source: the Wisconsin diagnostic breast-cancer data (W. H. Wolberg, W. N. Street,
O. L. Mangasarian; UCI Machine Learning Repository, doi:10.24432/C5DW2B, licence CC BY 4.0),
as shipped by scikit-learn (``sklearn.datasets.load_breast_cancer``): 569 tumours, 30
features of the cell nuclei, label 1 = benign, 0 = malignant.

Kept: the label and the ten "mean" features (columns 0-9: radius, texture, perimeter, area,
smoothness, compactness, concavity, concave points, symmetry, fractal dimension; the other
20 columns are the standard errors and the worst values of the same ten quantities).
Each feature is standardised, (v - mean) / sd with the population sd (ddof = 0) over all 569
rows, and rounded to 4 decimals; the rounded table is the data set of the target.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

OUT = Path(__file__).resolve().parents[2] / "interpolants" / "targets" / "breast_cancer.csv"
FEATURES = 10  # the first ten columns: the "mean" features


def make_table() -> tuple[np.ndarray, list[str]]:
    """(569, 11) array of label, ten standardised features; and the column names."""
    from sklearn.datasets import load_breast_cancer

    raw = load_breast_cancer()
    x = raw.data[:, :FEATURES]
    z = np.round((x - x.mean(0)) / x.std(0), 4)
    names = ["benign"] + [str(n).replace(" ", "_") for n in raw.feature_names[:FEATURES]]
    return np.c_[raw.target.astype(float), z], names


def main() -> None:
    table, names = make_table()
    header = (
        "Wisconsin diagnostic breast cancer (UCI, doi:10.24432/C5DW2B, CC BY 4.0), via "
        "sklearn.datasets.load_breast_cancer;\n"
        "made by benchmarks/references/make_logistic_data.py: label (1 = benign) and the ten "
        "'mean' features standardised (ddof 0), 4 decimals\n" + ",".join(names)
    )
    fmt = ["%d"] + ["%.4f"] * FEATURES
    np.savetxt(OUT, table, fmt=fmt, delimiter=",", header=header, comments="# ")
    print(f"wrote {OUT} ({table.shape[0]} rows; {int(table[:, 0].sum())} benign)")


if __name__ == "__main__":
    main()
