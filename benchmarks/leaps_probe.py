"""One LEAPS run on the L = 16 Ising model at beta_c, with the options given as a Python dict,
scored against Kaufman's exact log Z (the single runs of RESULTS.md "Discrete targets and
LEAPS"; ``interpolants bench leaps`` makes the comparisons).

    OMP_NUM_THREADS=1 python benchmarks/leaps_probe.py "dict(train_steps=300, steps=100)"
"""

import ast
import sys
import time

import interpolants as si


def main() -> None:
    text = sys.argv[1] if len(sys.argv) > 1 else "dict(train_steps=300, steps=100)"
    call = ast.parse(text, mode="eval").body  # dict(key=literal, ...)
    if not (isinstance(call, ast.Call) and getattr(call.func, "id", None) == "dict"):
        raise SystemExit("give the options as dict(key=value, ...)")
    options = {k.arg: ast.literal_eval(k.value) for k in call.keywords}
    target = si.targets.get("ising", L=16, beta=0.4407)
    start = time.perf_counter()
    r = si.sample(target, "leaps", n=2000, seed=0, **options)
    print(
        options,
        f"log Z error {r.log_Z - target.log_Z:+.3f} +- {r.log_Z_stderr:.3f}",
        f"ESS/N {r.ess:.3f}",
        f"evaluations {r.evaluations} (training {r.info.training_evaluations})",
        f"{time.perf_counter() - start:.0f} s",
    )


if __name__ == "__main__":
    main()
