#!/usr/bin/env python3
"""`autoheal check` on a generated 1,000-service file: median wall time and peak memory.

Usage: python3 bench/check_bench.py [--lua] [--bin PATH] [N_SERVICES] [RUNS]
(builds the release binary first; --bin measures that binary instead, to compare two builds
on the same machine at the same time)

With --lua every service also has a `check:` chunk (one line in most, a block of a few lines
in one of four, a library module in one of ten), so that the cost of compiling the chunks and
finding the globals they read is measured too.
"""
import os, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
args = sys.argv[1:]
lua = "--lua" in args
args = [a for a in args if a != "--lua"]
binary = None
if "--bin" in args:
    i = args.index("--bin")
    binary = os.path.abspath(args[i + 1])
    del args[i:i + 2]
n = int(args[0]) if len(args) > 0 else 1000
runs = int(args[1]) if len(args) > 1 else 21

if binary is None:
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    binary = os.path.join(ROOT, "target", "release", "autoheal")

lines = ["settings:", "  converge: 30s", ""]
deps = 0
for i in range(n):
    lines += [f"svc{i}:", f'  pname: "svc{i} --port {20000 + i}"', "  dep:"]
    lines += [f"    - name: db{i}", "      host: 127.0.0.1", f"      port: {30000 + i % 1000}"]
    lines += [f"    - name: api{i}", f"      url: http://127.0.0.1:{40000 + i % 1000}/health"]
    deps += 2
    if i > 0:  # a local chain edge to the previous service, so cycle detection has work
        lines += [f"    - name: svc{i - 1}"]
        deps += 1
    if lua and i % 10 == 0:
        lines += [f"  check: redis.ping{{port={6000 + i}}}"]
    elif lua and i % 4 == 0:
        lines += ["  check: |", f"    local ok, err = tcp_probe(\"127.0.0.1\", {20000 + i})",
                  "    if not ok then return false, err end",
                  f"    return alive(\"svc{i}\")"]
    elif lua:
        lines += [f"  check: return http_probe(\"http://127.0.0.1:{20000 + i}/health\")"]
    lines += [f"  script: /srv/svc{i}/start.sh", "  timeout: 30s", "  grace: 10s", ""]
with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
    f.write("\n".join(lines))
    path = f.name


# tick_bench's spawn_clean measures the child's own peak RSS, not Python's (a process spawned
# straight from Python inherits the interpreter's RSS high-water mark).
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tick_bench import set_child_subreaper, spawn_clean  # noqa: E402

set_child_subreaper()


def run_once(argv):
    return spawn_clean(argv, os.devnull)


walls, peaks = [], []
for _ in range(runs):
    wall, code, peak = run_once([binary, "check", "-c", path])
    if code != 0:
        sys.exit(f"check failed with exit {code}: run `{binary} check -c {path}`")
    walls.append(wall)
    peaks.append(peak)
summary = subprocess.run([binary, "check", "-c", path], capture_output=True, text=True).stdout
os.unlink(path)
print(summary.strip().replace(path, f"<generated {n}-service file>"))
print(f"autoheal check, {n} services, {deps} deps{', a Lua check each' if lua else ''}, {runs} runs: "
      f"median {statistics.median(walls) * 1000:.1f} ms, min {min(walls) * 1000:.1f} ms, "
      f"max {max(walls) * 1000:.1f} ms, peak RSS {max(peaks) / 1024:.1f} MiB")
