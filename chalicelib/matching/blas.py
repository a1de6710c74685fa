"""How many threads numpy's BLAS (OpenBLAS) may use in this process.

OpenBLAS starts one thread per core and its idle threads spin-wait: at 17,000 subjects one probe
cost 6.2 CPU-ms with the default threads against 0.3 ms on one (issue 12). The search is bound by
reading the templates, so a second thread buys little, and Lambda's other work (onnxruntime) has
threads of its own. threadpoolctl sets the limit on the loaded library at run time, so it holds
however numpy came to be imported first (OPENBLAS_NUM_THREADS only counts if set before that).
"""

from __future__ import annotations

import functools

from threadpoolctl import threadpool_limits


@functools.lru_cache(maxsize=8)
def limit_blas_threads(threads: int) -> int:
    """Cap BLAS at `threads` for the rest of the process (once per value); returns the cap."""
    threads = max(1, int(threads))
    threadpool_limits(limits=threads, user_api="blas")  # not a context: the cap stays
    return threads
