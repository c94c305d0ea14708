#!/usr/bin/env python3
"""The cost of Lua in a tick: one all-healthy `autoheal run` with 100 live services, each
carrying an inline `check:`, against the same services without Lua. Median wall and peak RSS.

Rows (same 100 live processes, liveness by pname, converge 0):
  no check                      liveness only
  health: tcp (YAML)            each service also probed for health in YAML, no Lua
  check: return true            the bare cost of a sandboxed Lua run per service
  check: return tcp_probe(...)  the same probe as the YAML row, from Lua

Usage: python3 bench/lua_bench.py [N] [RUNS]
"""
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tick_bench as tb  # noqa: E402  (its process, listener and measuring helpers)

N = int(sys.argv[1]) if len(sys.argv) > 1 else 100
RUNS = int(sys.argv[2]) if len(sys.argv) > 2 else 21


def conf(specs, tmp, port, body):
    lines = ["settings:", f"  state_dir: {tb.sq(os.path.join(tmp, 'state'))}", "  converge: 0", ""]
    for i, (kind, value) in enumerate(specs):
        lines += [f"svc{i}:", f"  {kind}: {tb.sq(value)}"]
        if body == "health":
            lines += ["  health:", "    host: 127.0.0.1", f"    port: {port}"]
        elif body:
            lines += [f"  check: {body.format(port=port)}"]
        lines += [f"  script: echo restart svc{i}", ""]
    return "\n".join(lines)


def main():
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=tb.ROOT, check=True)
    tb.set_child_subreaper()
    print(tb.machine())
    tmp = tempfile.mkdtemp(prefix="autoheal-lua-bench-")
    socks = []
    try:
        socks = tb.start_tcp_listeners(1)
        port = socks[0].getsockname()[1]
        specs = tb.start_sleeps(N, tmp)
        rows, base = [], None
        for label, body in [("no check", None), ("health: tcp (YAML)", "health"),
                            ("check: return true", "return true"),
                            ("check: return tcp_probe(...)", 'return tcp_probe("127.0.0.1", {port})')]:
            path = os.path.join(tmp, "conf.yaml")
            tb.write(path, conf(specs, tmp, port, body))
            out = os.path.join(tmp, "out.txt")
            walls, peak = [], 0
            for i in range(2 + RUNS):
                wall, code, rss = tb.spawn_clean([tb.BINARY, "run", "-c", path], out)
                if code != 0 or tb.read(out).strip():
                    tb.die(f"{label}: exit {code}, output:\n{tb.read(out)[-3000:]}")
                if i >= 2:
                    walls.append(wall)
                    peak = max(peak, rss)
            med = statistics.median(walls)
            base = base or med
            rows.append([label, tb.ms(med), tb.ms(min(walls)), tb.mib(peak),
                         f"{(med / base - 1) * 100:+.0f} %"])
        print(f"\nOne all-healthy tick, {N} live services, median of {RUNS} runs after 2 warm-ups:\n")
        print(tb.table(["services carry", "median ms", "min ms", "peak MiB", "vs no check"], rows))
    finally:
        tb.stop_all()
        for s in socks:
            s.close()


if __name__ == "__main__":
    main()
