"""Run one command and report its resource usage: the small parent that measures a study child.

Run as a script (``python study/launcher.py REPORT -- PROGRAM ARGS...``), never imported: it
imports only the standard library, so its own memory stays small. It starts the command, waits
for it with ``os.wait4`` and writes ``{"status", "cpu_seconds", "peak_rss_kib"}`` as JSON to
REPORT (temp file, then rename); its exit status is 0 once the report is written.

Why a separate parent: on Linux a child's ``ru_maxrss`` starts from the memory high-water mark
of the process it was started from (``execve`` records the old address space's peak, and
``vfork`` shares the parent's), so a child started directly by the study, which holds MNIST,
TensorFlow and the models it has measured, reported the study's own peak RSS instead of its own
(a ``python -c pass`` started from a process holding 400 MiB reported 438 MiB). Started from
this launcher, a child's peak RSS includes at most the launcher's few MiB.
"""

import json
import os
import subprocess
import sys


def main(argv: list[str]) -> int:
    """``argv``: REPORT, ``--``, the command. Returns the exit status (2: bad usage)."""
    if len(argv) < 3 or argv[1] != "--":
        print("usage: launcher.py REPORT -- PROGRAM [ARGS...]", file=sys.stderr)
        return 2
    report, command = argv[0], argv[2:]
    proc = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    try:
        _, status, usage = os.wait4(proc.pid, 0)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here: Popen must not wait again
    result = {
        "status": proc.returncode,
        "cpu_seconds": usage.ru_utime + usage.ru_stime,
        "peak_rss_kib": usage.ru_maxrss,
    }
    tmp = f"{report}.tmp"
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(result, handle)
    os.replace(tmp, report)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
