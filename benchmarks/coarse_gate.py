"""Where the int8 shortlist starts to pay: float32 vs int8 top-1 per gallery size (issue 12).

    .venv/bin/python benchmarks/coarse_gate.py 17000 65536 131072 262144

Prints the one-off cost (importing `onnx` and onnxruntime; the int8 copy and its sessions) and,
per batch size, the CPU-ms per probe of the float32 search (top_k) and of the int8 shortlist
with its float32 re-score, on random unit templates, 1 BLAS thread, best of 3 runs. The two
must return the same ids. chalicelib.matching.index COARSE_MIN_SUBJECTS is chosen from this.
"""

from __future__ import annotations

import resource
import sys

import numpy as np
from threadpoolctl import threadpool_limits


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main(sizes: list[int]) -> None:
    threadpool_limits(limits=1, user_api="blas")
    t0 = cpu()
    import onnx  # noqa: F401

    from chalicelib.vision.onnx_runtime import ort  # noqa: F401
    print(f"import onnx + onnxruntime: {cpu() - t0:.2f} CPU-s", flush=True)
    from chalicelib.matching import coarse
    from chalicelib.matching.index import ExactIndex, top_k

    rng = np.random.default_rng(0)
    for n in sizes:
        t = rng.standard_normal((n, 128)).astype(np.float32)
        index = ExactIndex([str(i) for i in range(n)], t, "bench")
        c0 = cpu()
        scorer = coarse.CoarseScorer(index.blocks, coarse.COARSE_BLOCK)
        line = [f"N={n:,}: int8 copy + sessions {cpu() - c0:.2f} CPU-s"]
        for b in (1, 2, 4, 8, 16):
            p = rng.standard_normal((b, 128)).astype(np.float32)
            p /= np.linalg.norm(p, axis=1, keepdims=True)
            reps = max(3, int(2e6 // (n * b)))
            res = {}
            for name, fn in (("float32", lambda p=p, i=index: top_k(p, i.blocks, 1)),
                             ("int8", lambda p=p, i=index, s=scorer: i._search_coarse(s, p, 1))):
                best = 1e9
                for _ in range(3):
                    c0 = cpu()
                    for _ in range(reps):
                        fn()
                    best = min(best, (cpu() - c0) / reps / b * 1e3)
                res[name] = best
            same = (top_k(p, index.blocks, 1)[0] == index._search_coarse(scorer, p, 1)[0]).all()
            line.append(f"B={b} float32 {res['float32']:.3f} int8 {res['int8']:.3f} ms/probe"
                        f"{'' if same else ' (IDS DIFFER)'}")
        print(" | ".join(line), flush=True)


if __name__ == "__main__":
    main([int(a) for a in sys.argv[1:]] or [17000, 65536, 131072, 262144])
