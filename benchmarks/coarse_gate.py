"""Where the int8 shortlist starts to pay: float32 vs int8 per gallery size and batch (issue 12).

    .venv/bin/python benchmarks/coarse_gate.py                       # the sizes below, top-1
    .venv/bin/python benchmarks/coarse_gate.py --sizes 17000 --k 5

Prints the one-off cost of the int8 path (importing onnxruntime; the int8 copy and its
sessions) and, per batch size, the CPU-ms per probe of the float32 search (top_k) and of the
int8 shortlist with its float32 re-score, on random unit templates, 1 BLAS thread, best of 3
runs. The two must return the same ids. chalicelib.matching.index's COARSE_MIN_SUBJECTS,
COARSE_MIN_PROBES and COARSE_MIN_BATCH_SUBJECTS are chosen from this.
"""

from __future__ import annotations

import argparse
import resource

import numpy as np
from threadpoolctl import threadpool_limits


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[2048, 8192, 17000, 65536, 262144])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 2, 3, 4, 8, 16, 64])
    p.add_argument("--k", type=int, default=1)
    args = p.parse_args()
    threadpool_limits(limits=1, user_api="blas")
    t0 = cpu()
    from chalicelib.vision.onnx_runtime import ort  # noqa: F401
    print(f"import onnxruntime: {cpu() - t0:.2f} CPU-s", flush=True)
    from chalicelib.matching import coarse
    from chalicelib.matching.index import ExactIndex, top_k

    rng = np.random.default_rng(0)
    for n in args.sizes:
        t = rng.standard_normal((n, 128)).astype(np.float32)
        index = ExactIndex([str(i) for i in range(n)], t, "bench")
        c0 = cpu()
        scorer = coarse.CoarseScorer(index.unit, coarse.COARSE_BLOCK)
        line = [f"N={n:,}: int8 copy + sessions {cpu() - c0:.3f} CPU-s"]
        for b in args.batches:
            p = rng.standard_normal((b, 128)).astype(np.float32)
            p /= np.linalg.norm(p, axis=1, keepdims=True)
            reps = max(3, int(2e7 // (n * b)))
            res = {}
            for name, fn in (("float32", lambda p=p, i=index: top_k(p, i.blocks, args.k)),
                             ("int8", lambda p=p, i=index, s=scorer:
                              i._search_coarse(s, p, args.k))):
                fn()
                best = 1e9
                for _ in range(3):
                    c0 = cpu()
                    for _ in range(reps):
                        fn()
                    best = min(best, (cpu() - c0) / reps / b * 1e3)
                res[name] = best
            same = np.array_equal(top_k(p, index.blocks, args.k)[0],
                                  index._search_coarse(scorer, p, args.k)[0])
            line.append(f"B={b} float32 {res['float32']:.3f} int8 {res['int8']:.3f} ms/probe"
                        f"{'' if same else ' (IDS DIFFER)'}")
        print("\n  ".join(line), flush=True)


if __name__ == "__main__":
    main()
