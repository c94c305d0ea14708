#!/usr/bin/env python3
"""The power-cut drill report (issue 5): the 3-host, 9-service drill of tests/drill.rs, run
with converge on and in one-pass mode (`settings.converge: 0`, like the original tool) with
the same cron interval; prints seconds from power-on to all healthy, the critical path of the
fixtures' warm-ups (the physical limit), premature and duplicate starts.

    python3 bench/drill_report.py            # 3 runs per mode, about two minutes
    DRILL_RUNS=1 python3 bench/drill_report.py

It builds the release binary and the example autoheal-fixture, and runs the ignored test
`drill_report`, which uses them.
"""
import os
import subprocess
import sys

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
cmd = ["cargo", "test", "--release", "--quiet", "--test", "drill", "--",
       "--ignored", "--exact", "drill_report", "--nocapture", "--test-threads", "1"]
p = subprocess.run(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
lines = p.stdout.splitlines()
report = [l for l in lines if l.startswith(("drill:", "critical path", "converge", "one pass"))]
print("\n".join(report if p.returncode == 0 and report else lines))
sys.exit(p.returncode)
