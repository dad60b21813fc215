"""Score again the models of an ``interpolants bench flowmap`` run over several independent
draws (samples and the floor's data), for scores with standard errors:

    python benchmarks/flowmap_rescore.py runs/bench/flowmap --draws 5 --out runs/bench/flowmap-5

Writes metrics.json, table.md and flowmap.png into --out and prints the tables. Slow: about
40 minutes on one core for 5 draws of the default run (sliced W2 of 20 000 points, ~6 s each).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from interpolants.app.flowmap_bench import format_flowmap, rescore_flowmap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="the flowmap benchmark's run folder")
    parser.add_argument("--draws", type=int, default=5, help="independent draws (default 5)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    args = parser.parse_args()
    print(format_flowmap(rescore_flowmap(args.folder, args.out, draws=args.draws)))


if __name__ == "__main__":
    main()
