#!/usr/bin/env python3
"""A stand-in for pg_dump that replays a real dump at a real pg_dump's pace (benchmarks only).

  dump-replay.py record TIMELINE DUMP -- pg_dump ARGS...
      runs pg_dump, writes its stdout to DUMP and, for every read from its pipe, the time since
      the start and the byte count to TIMELINE: pg_dump's measured rate and burst pattern
      (fast COPY, pauses between tables).
  dump-replay.py play TIMELINE DUMP
      writes DUMP to stdout following TIMELINE: each piece no earlier than pg_dump wrote it.
      When the reader falls behind, the pipe fills and the stand-in waits, exactly as pg_dump
      would; the stand-in's own time to /dev/null is the pace pgb must keep.

The stand-in uses almost no CPU, so on a 2-core machine the cores are left to pgb, as they are
when the database server runs on another machine.
"""
import os
import sys
import time

PIPE_READ = 1 << 20


def record(timeline, dump, cmd):
    import subprocess

    start = time.monotonic()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    fd = p.stdout.fileno()
    with open(dump, "wb") as out, open(timeline, "w") as tl:
        while True:
            b = os.read(fd, PIPE_READ)
            if not b:
                break
            out.write(b)
            tl.write(f"{time.monotonic() - start:.6f} {len(b)}\n")
    rc = p.wait()
    if rc != 0:
        sys.exit(f"dump-replay: {cmd[0]} exited with {rc}")


def play(timeline, dump):
    out = sys.stdout.buffer.raw if hasattr(sys.stdout.buffer, "raw") else sys.stdout.buffer
    fd = out.fileno()
    start = time.monotonic()
    with open(dump, "rb") as src, open(timeline) as tl:
        for line in tl:
            at, n = line.split()
            delay = float(at) - (time.monotonic() - start)
            if delay > 0:
                time.sleep(delay)
            view = memoryview(src.read(int(n)))
            while view:
                view = view[os.write(fd, view):]


def main(argv):
    if len(argv) >= 5 and argv[1] == "record" and argv[4] == "--":
        record(argv[2], argv[3], argv[5:])
    elif len(argv) == 4 and argv[1] == "play":
        play(argv[2], argv[3])
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
