#!/usr/bin/env python3
"""Many distinct black-holed targets: one observation should cost one probe timeout, whatever
their number (up to the probe threads' bound, 1,024).

Usage: python3 bench/probe_bench.py [N ...]     (builds the release binary first)
       AUTOHEAL_BASELINE=/path/to/old/autoheal python3 bench/probe_bench.py

One service with N http deps on distinct URLs of a loopback listener that never accepts (the
handshake completes through its backlog, or, once that is full, the SYN goes unanswered:
either way no probe gets an answer), each with a 1 s timeout. Measured: `autoheal status`
(probes every dep) and `autoheal run` with `converge: 5s` (how far it overruns its budget).
Everything is on 127.0.0.1; the listener is this script's and closes with it.
"""
import os, platform, socket, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "autoheal")
BASELINE = os.environ.get("AUTOHEAL_BASELINE")
COUNTS = [int(a) for a in sys.argv[1:]] or [200, 1000]


def config(d, port, n):
    deps = "\n".join("    - {name: d%d, url: 'http://127.0.0.1:%d/p%d', timeout: 1s}" % (i, port, i)
                     for i in range(n))
    path = os.path.join(d, "conf.yaml")
    with open(path, "w") as f:
        f.write("settings:\n  state_dir: state\n  converge: 5s\nweb:\n  pname: 'no such process %d'\n"
                "  dep:\n%s\n  script: 'true'\n" % (n, deps))
    return path


def timed(argv):
    began = time.time()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.time() - began


def main():
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(1)
    port = hole.getsockname()[1]
    print("machine: %s, %d cores, load average %.2f at start" %
          (platform.processor() or platform.machine(), os.cpu_count(), os.getloadavg()[0]))
    builds = [("autoheal", BINARY)] + ([("baseline", BASELINE)] if BASELINE else [])
    print("\n%-9s %6s %16s %28s" % ("build", "deps", "status (s)", "run, converge 5s (s)"))
    for n in COUNTS:
        d = tempfile.mkdtemp(prefix="probe-bench-")
        conf = config(d, port, n)
        for label, binary in builds:
            st = timed([binary, "status", "-c", conf])
            run = timed([binary, "run", "-c", conf])
            print("%-9s %6d %16.2f %18.2f (over: %.2f)" % (label, n, st, run, run - 5.0))


if __name__ == "__main__":
    main()
