"""1:N search cost against the memory-bandwidth bound (issue 12), before and after, in one run.

    .venv/bin/python benchmarks/search_bench.py                  # N = 17,000 and 1,000,000
    .venv/bin/python benchmarks/search_bench.py --sizes 17000 --k 1

The memory bound is the CPU time to read the (subjects x 128) float32 template matrix from main
memory once: its bytes at the read rate of a 512 MB array (the faster of np.sum and np.max,
best of several), as in the issue. At 17,000 subjects (8.7 MB) the matrix stays in this CPU's
32 MB L3 between calls, so the in-cache read (the same reductions over the matrix itself) is
printed too. A batch of B probes needs the templates once, so the bound per probe is that time
/ B. A batch also needs B x 128 multiply-adds per subject: the arithmetic floor is those at
the best rate this core reached in this run with the fastest product it has (onnxruntime's
MatMulInteger, int8 with VNNI here, on cache-resident operands). The bound printed is the
larger of the two (a roofline); from about 30 probes on, at both sizes, it is the arithmetic.

Batches from 8,192 subjects, single probes from 32,768 and top-k (k > 1) go through an int8
shortlist (chalicelib.matching.coarse; benchmarks/coarse_gate.py measures the gate), which streams
(subjects x 128) int8, a quarter of the float32 bytes, then re-scores a few dozen float32 rows
per probe.

CPU time is getrusage of the process (user + system, all threads, onnxruntime's included), so
the spinning of idle threads between calls is counted: each figure is the CPU of a run of
consecutive calls divided by the calls, best of --rounds runs. "before" is the search before
issue 12 (kept below as OriginalIndex); "float32" is the blocked float32 search (top_k, what
ExactIndex did for every batch before the int8 shortlist, and still does for a single probe's
top-1 below 32,768 subjects); "after" is ExactIndex.search. Each configuration's top-k ids are
checked against the original's on the same probes.
"""

from __future__ import annotations

import argparse
import resource
import time
from collections.abc import Callable

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from chalicelib.matching import coarse
from chalicelib.matching.index import Candidate, ExactIndex, top_k, use_coarse
from chalicelib.vision.onnx_runtime import ort  # noqa: F401  (imported before the build is timed)


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


def int8_macs_per_s(rounds: int) -> float:
    """One thread's best MatMulInteger rate (multiply-adds/s) on cache-resident shapes, K = 128."""
    rng = np.random.default_rng(0)
    best = 0.0
    for m, n in ((64, 4096), (256, 4096), (64, 32768)):
        sess, _held = coarse._session(rng.integers(-63, 64, (128, n), dtype=np.int8))
        a = rng.integers(0, 256, (m, 128), dtype=np.uint8)
        t = per_call(lambda s=sess, a=a: s.run(None, {"A": a}), rounds)
        best = max(best, m * 128 * n / t)
    return best


def ids(result: list[list[Candidate]]) -> list[list[str]]:
    return [[c.subject_id for c in row] for row in result]


class Float32Blocks:
    """ExactIndex's blocked float32 search for every batch (before the int8 shortlist)."""

    def __init__(self, index: ExactIndex) -> None:
        self.index = index

    def search(self, probes: np.ndarray, k: int = 1) -> list[list[Candidate]]:
        idx, val = top_k(probes, self.index.blocks, min(k, len(self.index)))
        names = self.index.subject_ids
        return [[Candidate(names[j], s) for j, s in zip(ri, rv, strict=True)]
                for ri, rv in zip(idx.tolist(), val.tolist(), strict=True)]


def dram_bytes_per_s(rounds: int) -> float:
    """Read rate of a 512 MB array: far beyond any cache, so main memory's."""
    a = np.ones((1 << 20, 128), np.float32)
    return a.nbytes / min(per_call(lambda: np.sum(a), rounds), per_call(lambda: np.max(a), rounds))


def bench_size(n: int, args: argparse.Namespace, macs: float, dram: float,
               default_threads: int) -> None:
    rng = np.random.default_rng(n)
    t = rng.standard_normal((n, 128), dtype=np.float32)
    t /= np.linalg.norm(t, axis=1, keepdims=True)
    subject_ids = [f"s{i}" for i in range(n)]
    after = ExactIndex(subject_ids, t, "bench")
    before = OriginalIndex(subject_ids, t)
    blocks = Float32Blocks(after)
    spent = cpu_s()
    scorer = after.coarse  # built here, not in the first timed call
    build = cpu_s() - spent
    cached = min(per_call(lambda: np.sum(t), args.rounds), per_call(lambda: np.max(t), args.rounds))
    memory = t.nbytes / dram
    print(f"\nN = {n:,}: float32 templates {t.nbytes / 2**20:.0f} MB, read from main memory in "
          f"{memory * 1e3:.2f} ms at {dram / 1e9:.1f} GB/s (in-cache read {cached * 1e3:.2f} "
          f"CPU-ms); int8 multiply-adds at {macs / 1e9:.0f} G/s; int8 copy and sessions made "
          f"in {build:.2f} CPU-s")
    print("| k | B | search | path | CPU-ms / batch | CPU-ms / probe | bound, CPU-ms / batch "
          "| **x bound** | x memory bound | x in-cache read | same ids as before |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    # The default-threads search last: OpenBLAS threads it woke spin on into the next one.
    configs = [("float32", blocks, 1), ("after", after, 1), ("before", before, default_threads)]
    for k in args.k:
        for b in args.batches:
            probes = rng.standard_normal((b, 128), dtype=np.float32)
            probes /= np.linalg.norm(probes, axis=1, keepdims=True)
            want = ids(before.search(probes, k))
            bound = max(memory, b * 128 * n / macs)
            kind = "memory" if bound == memory else "arithmetic"
            for name, index, threads in configs:
                path = "int8 + re-score" if index is after and use_coarse(n, b, k) and scorer \
                    else "float32"
                with threadpool_limits(limits=threads, user_api="blas"):
                    same = ids(index.search(probes, k)) == want
                    c = per_call(lambda i=index, k=k, q=probes: i.search(q, k), args.rounds)
                print(f"| {k} | {b} | {name}, {threads} BLAS thread{'s' * (threads > 1)} | "
                      f"{path} | {c * 1e3:.2f} | {c / b * 1e3:.3f} | {bound * 1e3:.2f} ({kind}) "
                      f"| **{c / bound:.2f}** | {c / memory:.2f} | {c / cached:.2f} | "
                      f"{'yes' if same else 'NO'} |", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[17_000, 1_000_000])
    p.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8, 16, 64])
    p.add_argument("--k", type=int, nargs="+", default=[1, 5])
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    blas = [i for i in threadpool_info() if i["user_api"] == "blas"]
    default_threads = blas[0]["num_threads"] if blas else 1
    print(f"BLAS: {blas[0]['internal_api'] if blas else '?'} {blas[0].get('version', '')}, "
          f"default threads {default_threads}; deployed: LFR_BLAS_THREADS=1 "
          f"(LFR_ONNX_THREADS=2); {time.strftime('%Y-%m-%d %H:%M')}")
    macs, dram = int8_macs_per_s(args.rounds), dram_bytes_per_s(args.rounds)
    for n in args.sizes:
        bench_size(n, args, macs, dram, default_threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
