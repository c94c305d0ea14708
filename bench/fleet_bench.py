#!/usr/bin/env python3
"""`autoheal fleet` on a generated fleet: HOSTS host files of SERVICES services each (default
1,000 x 20), every host at 192.0.2.x/198.51.100.x-style TEST-NET addresses written as
settings.host (nothing is probed: `fleet` reads files only). Each host's services form a local
chain by name; the first waits on the previous host's last service at its health: port (tcp),
every fifth has an http dep on a random earlier host, and one external dep each. Prints the
median of RUNS runs and the peak RSS.

    python3 bench/fleet_bench.py [--hosts 1000] [--services 20] [--runs 5] [--bin target/release/autoheal]
"""
import argparse, os, random, resource, statistics, subprocess, sys, tempfile, time

p = argparse.ArgumentParser()
p.add_argument("--hosts", type=int, default=1000)
p.add_argument("--services", type=int, default=20)
p.add_argument("--runs", type=int, default=5)
p.add_argument("--bin", default="target/release/autoheal")
a = p.parse_args()
random.seed(1)

def addr(h):
    return f"10.{h // 65536}.{h // 256 % 256}.{h % 256}"

with tempfile.TemporaryDirectory() as d:
    for h in range(a.hosts):
        out = [f"settings:\n  host: {addr(h)}\n"]
        for s in range(a.services):
            out.append(f"s{s}:\n  pname: 'fleet-bench s{s}'\n  script: exit 1\n"
                       f"  health: {{host: 127.0.0.1, port: {10000 + s}}}\n  warmup: {1 + s % 5}s\n  dep:\n")
            if s > 0:
                out.append(f"    - name: s{s - 1}\n")
            elif h > 0:
                out.append(f"    - {{name: prev, host: {addr(h - 1)}, port: {10000 + a.services - 1}}}\n")
            else:
                out.append("    - {name: ext, host: 192.0.2.1, port: 25}\n")
            if s % 5 == 4 and h > 0:
                o = random.randrange(h)
                out.append(f"    - {{name: up{s}, url: 'http://{addr(o)}:{10000 + s}/health'}}\n")
        open(os.path.join(d, f"h{h:05}.yaml"), "w").write("".join(out))
    times = []
    for _ in range(a.runs):
        t = time.perf_counter()
        r = subprocess.run([a.bin, "fleet", d], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        times.append(time.perf_counter() - t)
        if r.returncode != 0:
            sys.exit(f"fleet exited {r.returncode}: {r.stderr.decode()[:2000]}")
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    last = [l for l in r.stdout.decode().splitlines() if l.startswith("Critical path") or l.startswith("Fleet of")]
    print(f"{a.hosts} hosts x {a.services} services: median {statistics.median(times) * 1000:.0f} ms "
          f"(min {min(times) * 1000:.0f}, max {max(times) * 1000:.0f}, {a.runs} runs), peak RSS {rss:.1f} MiB")
    for l in last:
        print("  " + l)
