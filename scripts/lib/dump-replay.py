#!/usr/bin/env python3
"""A stand-in for pg_dump that replays a real dump at a real pg_dump's pace, or in bursts
(benchmarks only).

  dump-replay.py record TIMELINE DUMP -- pg_dump ARGS...
      runs pg_dump, writes its stdout to DUMP and, for every read from its pipe, the time since
      the start and the byte count to TIMELINE: pg_dump's measured rate and burst pattern
      (fast COPY, pauses between tables).
  dump-replay.py play TIMELINE DUMP
      writes DUMP to stdout following TIMELINE: each piece no earlier than pg_dump wrote it.
      When the reader falls behind, the pipe fills and the stand-in waits, exactly as pg_dump
      would; the stand-in's own time to /dev/null is the pace pgb must keep.
  dump-replay.py burst DUMP [BURST_MB RATE_MBPS PAUSE_S]
      writes DUMP to stdout in bursts of BURST_MB MB (default 64) at RATE_MBPS MB/s (default
      500), sleeping PAUSE_S seconds (default 0.4) after each burst: a pg_dump whose server
      sends large tables at full speed with pauses between them. A pause starts when its
      burst has been written, however long the reader took (the server's work between
      tables does not shrink because the reader was slow), so a reader that cannot absorb a
      burst stretches the whole dump; the stand-in's own time to /dev/null is the pace.

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


def burst(dump, burst_mb=64.0, rate_mbps=500.0, pause_s=0.4):
    out = sys.stdout.buffer.raw if hasattr(sys.stdout.buffer, "raw") else sys.stdout.buffer
    fd = out.fileno()
    burst_bytes = int(burst_mb * 1e6)
    rate = rate_mbps * 1e6
    with open(dump, "rb") as src:
        while True:
            start = time.monotonic()
            sent = 0
            while sent < burst_bytes:
                piece = src.read(min(PIPE_READ, burst_bytes - sent))
                if not piece:
                    return
                # No faster than RATE: each piece no earlier than its time in the burst.
                delay = sent / rate - (time.monotonic() - start)
                if delay > 0:
                    time.sleep(delay)
                view = memoryview(piece)
                while view:
                    view = view[os.write(fd, view):]
                sent += len(piece)
            time.sleep(pause_s)


def main(argv):
    if len(argv) >= 5 and argv[1] == "record" and argv[4] == "--":
        record(argv[2], argv[3], argv[5:])
    elif len(argv) == 4 and argv[1] == "play":
        play(argv[2], argv[3])
    elif len(argv) in (3, 6) and argv[1] == "burst":
        burst(argv[2], *map(float, argv[3:]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main(sys.argv)
