#!/usr/bin/env python3
"""A local chain of three services, each ready 1.5 s after its start: how soon after the first
start is the last ready, against the critical path (3 x 1.5 s)?

Usage: python3 bench/local_chain.py [RUNS]     (builds the release binary first)
       AUTOHEAL_BASELINE=/path/to/old/autoheal python3 bench/local_chain.py

Each service is a small Python HTTP server on 127.0.0.1 that sleeps 1.5 s before it listens;
its `health:` is a tcp probe of its port, and each waits on the one before by name. One
`autoheal run` starts the chain. Measured: the time from the first service's start (its
script's own timestamp) to the last one's port accepting (polled every 5 ms by this script),
minus the critical path (the three warm-ups, each from its own start to its port accepting,
summed). Everything runs on loopback and is stopped at the end, by pid.
"""
import os, platform, socket, statistics, subprocess, sys, tempfile, time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "autoheal")
BASELINE = os.environ.get("AUTOHEAL_BASELINE")
RUNS = int(sys.argv[1]) if len(sys.argv) > 1 else 5
WARMUP = 1.5

SERVER = """import socket, sys, time
port = int(sys.argv[1])
time.sleep(%s)
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", port))
s.listen(16)
open(sys.argv[2], "a").write("%%s listening %%f\\n" %% (port, time.time()))
while True:
    c, _ = s.accept()
    c.close()
""" % WARMUP


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def accepts(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.05).close()
        return True
    except OSError:
        return False


def one_run(binary):
    d = tempfile.mkdtemp(prefix="local-chain-")
    with open(os.path.join(d, "server.py"), "w") as f:
        f.write(SERVER)
    ports = [free_port() for _ in range(3)]
    journal = os.path.join(d, "journal")
    conf = []
    for i, port in enumerate(ports):
        name = "s%d" % i
        conf.append(name + ":")
        conf.append("  pname: 'server.py %d '" % port)
        conf.append("  health: {host: 127.0.0.1, port: %d}" % port)
        if i:
            conf.append("  dep: [{name: s%d}]" % (i - 1))
        conf.append("  script: 'echo %s started $(date +%%s.%%N) >> %s; "
                    "python3 %s/server.py %d %s & echo $! > %s/%s.pid'"
                    % (name, journal, d, port, journal, d, name))
    with open(os.path.join(d, "conf.yaml"), "w") as f:
        f.write("settings:\n  state_dir: state\n  converge: 30s\n" + "\n".join(conf) + "\n")
    tick = subprocess.Popen([binary, "run", "-c", os.path.join(d, "conf.yaml")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ready = None
    deadline = time.time() + 30
    while time.time() < deadline:
        if accepts(ports[2]):
            ready = time.time()
            break
        time.sleep(0.005)
    tick.wait()
    starts, listens = {}, {}
    for line in open(journal):
        what = line.split()
        if what[1] == "started":
            starts[what[0]] = float(what[2])
        else:
            listens[int(what[0])] = float(what[2])
    for i in range(3):
        try:
            pid = int(open(os.path.join(d, "s%d.pid" % i)).read())
            os.kill(pid, 9)
        except (OSError, ValueError):
            pass
    critical = sum(listens[ports[i]] - starts["s%d" % i] for i in range(3))
    total = ready - starts["s0"]
    return total, critical


def main():
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    print("machine: %s, %d cores, load average %.2f at start" %
          (platform.processor() or platform.machine(), os.cpu_count(), os.getloadavg()[0]))
    builds = [("autoheal", BINARY)] + ([("baseline", BASELINE)] if BASELINE else [])
    print("\n%-10s %5s %22s %18s %22s" % ("build", "runs", "first start → last ready",
                                          "critical path", "over the critical path"))
    for label, binary in builds:
        rows = [one_run(binary) for _ in range(RUNS)]
        over = [t - c for t, c in rows]
        print("%-10s %5d %20.2f s %16.2f s %14.2f s (max %.2f)" % (
            label, RUNS, statistics.median(t for t, _ in rows),
            statistics.median(c for _, c in rows), statistics.median(over), max(over)))


if __name__ == "__main__":
    main()
