"""1:N search cost against the memory-bandwidth bound (issue 12), before and after, in one run.

    .venv/bin/python benchmarks/search_bench.py                  # N = 17,000 and 1,000,000
    .venv/bin/python benchmarks/search_bench.py --sizes 17000 --k 1

The bound is the CPU time to read the (subjects x 128) float32 template matrix once: the fastest
of np.sum and np.max over it, best of several. At 17,000 subjects (8.7 MB) the matrix stays in
this CPU's 32 MB L3 between calls, so that read is faster than main memory; the time to read it
from main memory (at the rate measured on a 512 MB array) is printed too. A batch of B probes
needs the templates once, so the bound per probe is that time / B. A second floor is printed
beside it: the multiply-adds (2 x B x 128 x N flops) at this CPU's measured sgemm rate on
cache-resident operands. Above a few probes per batch it, not memory, is what exact float32
search can reach on this CPU.

CPU time is getrusage of the process (user + system, all threads), so the spinning of idle
OpenBLAS threads between calls is counted: each figure is the CPU of a run of consecutive calls
divided by the calls, best of --rounds runs. "before" is the search as it was (kept below as
OriginalIndex); "after" is chalicelib.matching.index.ExactIndex. Each configuration's top-k ids
are checked against the original's on the same probes.
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Callable

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from chalicelib.matching.index import Candidate, ExactIndex


class OriginalIndex:
    """The search before issue 12 (revision 8c5af65): the whole score matrix, argpartition."""

    def __init__(self, subject_ids: list[str], unit_templates: np.ndarray) -> None:
        self.subject_ids = subject_ids
        self.templates = unit_templates  # (subjects, dims), already unit rows

    def search(self, probes: np.ndarray, k: int = 1) -> list[list[Candidate]]:
        scores = probes @ self.templates.T
        k = min(k, len(self.subject_ids))
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        out = []
        for row, idx in zip(scores, top, strict=True):
            order = idx[np.argsort(-row[idx])]
            out.append([Candidate(self.subject_ids[j], float(row[j])) for j in order])
        return out


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def per_call(fn: Callable[[], object], rounds: int, min_cpu_s: float = 0.3) -> float:
    """CPU seconds per call: consecutive calls until min_cpu_s, best of `rounds`."""
    fn()  # warm: pages touched, BLAS threads started
    best = float("inf")
    for _ in range(rounds):
        calls, start = 0, cpu_s()
        while True:
            fn()
            calls += 1
            spent = cpu_s() - start
            if spent >= min_cpu_s or calls >= 50:
                break
        best = min(best, spent / calls)
    return best


def sgemm_flops_per_s(rounds: int) -> float:
    """One thread's best sgemm rate over a few cache-resident shapes (K = 128, as in search)."""
    rng = np.random.default_rng(0)
    best = 0.0
    for m, n in ((64, 2048), (256, 2048), (256, 4096)):
        a = rng.standard_normal((m, 128), dtype=np.float32)
        b = rng.standard_normal((128, n), dtype=np.float32)
        with threadpool_limits(limits=1, user_api="blas"):
            t = per_call(lambda a=a, b=b: [a @ b for _ in range(10)], rounds)
        best = max(best, 2 * m * 128 * n * 10 / t)
    return best


def ids(result: list[list[Candidate]]) -> list[list[str]]:
    return [[c.subject_id for c in row] for row in result]


def dram_bytes_per_s(rounds: int) -> float:
    """Read rate of a 512 MB array: far beyond any cache, so main memory's."""
    a = np.ones((1 << 20, 128), np.float32)
    return a.nbytes / min(per_call(lambda: np.sum(a), rounds), per_call(lambda: np.max(a), rounds))


def bench_size(n: int, args: argparse.Namespace, flops: float, dram: float,
               default_threads: int) -> None:
    rng = np.random.default_rng(n)
    t = rng.standard_normal((n, 128), dtype=np.float32)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    subject_ids = [f"s{i}" for i in range(n)]
    after = ExactIndex(subject_ids, t, "bench")
    before = OriginalIndex(subject_ids, t)
    stream = min(per_call(lambda: np.sum(t), args.rounds), per_call(lambda: np.max(t), args.rounds))
    from_dram = t.nbytes / dram
    print(f"\nN = {n:,}: templates {t.nbytes / 2**20:.0f} MB, read once in {stream * 1e3:.2f} "
          f"CPU-ms ({t.nbytes / stream / 1e9:.1f} GB/s; from main memory {from_dram * 1e3:.2f} ms "
          f"at {dram / 1e9:.1f} GB/s); sgemm {flops / 1e9:.0f} GFLOP/s")
    print("| k | B | search | BLAS threads | CPU-ms / batch | CPU-ms / probe | x read once "
          "| x read from main memory | x max(read once, compute) | same ids as before |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    configs = [("before", before, default_threads), ("before", before, 1),
               ("after", after, 1), ("after", after, 2)]
    for k in args.k:
        for b in args.batches:
            probes = rng.standard_normal((b, 128), dtype=np.float32)
            probes /= np.linalg.norm(probes, axis=1, keepdims=True)
            want = ids(before.search(probes, k))
            floor = max(stream, 2 * b * 128 * n / flops)
            for name, index, threads in configs:
                with threadpool_limits(limits=threads, user_api="blas"):
                    same = ids(index.search(probes, k)) == want
                    c = per_call(lambda i=index, k=k, q=probes: i.search(q, k), args.rounds)
                print(f"| {k} | {b} | {name} | {threads} | {c * 1e3:.2f} | {c / b * 1e3:.3f} | "
                      f"{c / stream:.2f} | {c / from_dram:.2f} | {c / floor:.2f} | "
                      f"{'yes' if same else 'NO'} |", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[17_000, 1_000_000])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 4, 8, 64])
    p.add_argument("--k", type=int, nargs="+", default=[1, 5])
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
    default_threads = blas[0]["num_threads"] if blas else 1
    print(f"BLAS: {blas[0]['internal_api'] if blas else '?'} {blas[0].get('version', '')}, "
          f"default threads {default_threads}; deployed: LFR_BLAS_THREADS=1 "
          f"(LFR_ONNX_THREADS=2); {time.strftime('%Y-%m-%d %H:%M')}")
    flops, dram = sgemm_flops_per_s(args.rounds), dram_bytes_per_s(args.rounds)
    for n in args.sizes:
        bench_size(n, args, flops, dram, default_threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
