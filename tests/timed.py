"""Run a command and print its wall time and the CPU time of it and everything it started and
waited for (pytest, its xdist workers, their moto servers and function processes).

    python -m tests.timed -- pytest -q ...

Exits with the command's status. `make test` uses it so that every run says what it cost.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time


def main(argv: list[str]) -> int:
    command = argv[1:] if argv[:1] == ["--"] else argv
    if not command:
        print("usage: python -m tests.timed -- COMMAND [ARGS...]", file=sys.stderr)
        return 2
    start = time.monotonic()
    code = subprocess.call(command)
    wall = time.monotonic() - start
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = usage.ru_utime + usage.ru_stime
    print(f"{command[0].rsplit('/', 1)[-1]}: wall {wall:.1f} s, CPU {cpu:.1f} s "
          f"(user {usage.ru_utime:.1f}, system {usage.ru_stime:.1f}; "
          f"{cpu / wall if wall else 0:.2f} cores busy on average), exit {code}", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
