#!/usr/bin/env python3
"""One autoheal tick versus the original tool's bash approach, on a real workload.

Usage: python3 bench/tick_bench.py [--sizes 10,100,500,2000] [--runs 15] [--no-bash] [--no-dead]
       (builds the release binary first; about 4 minutes, 1 without the bash runs)

Needs bash, curl, nc (netcat-openbsd), pgrep and ps (procps) on the PATH; Python 3 standard
library only. Everything runs on 127.0.0.1, and everything started is stopped at the end (by pid).

1. An all-healthy tick for N = 10, 100, 500, 2,000 services. Each service is a live `sleep`
   with a unique command line, checked by `pname` (a regex over that command line) or, for one
   in five, by `pid_file` (written after the process started), and has two deps: a tcp dep on
   one of 10 loopback listeners and an http dep on `/health` of one of 10 small HTTP servers
   (both run in threads of this script). The sleeps are started as each N needs them, so the
   process table holds N of them and the machine's own (some 70 here). Measured, interleaved
   (one run of each command in turn, each round in a rotated order), on the same table:
   - the floor of reading that table: `cat /proc/[0-9]*/cmdline /proc/[0-9]*/stat >/dev/null`
     run by `sh -c` (what any tool that reads every process's command line and state pays);
   - `autoheal run` (probes only the deps of dead services: none here) and
     `autoheal status --json` (probes every distinct dep target once, in parallel);
   - the bash script the original generator would emit for the same config, run with bash:
     per service `nc -z -w 3`, `curl -sf -m 3`, then `pgrep -f` or `ps -p $(cat pidfile)`.
   Bash does every probe, so `status --json` is the like-for-like comparison; `run` is what cron
   actually runs every minute. Bash runs only up to N = 500 (at 2,000 a run takes minutes).
2. One tick with 20 dead services whose http dep never answers (a loopback listener that never
   accepts: the TCP handshake completes through the backlog, the request gets no reply), 1 s
   timeout each, `converge: 0`: `autoheal run` (exits 1, as it should) versus the original
   script (aborts at the first unready dep: one timeout) and the same script made to go on past
   an unready dep (`if curl ...; then ...; fi`, which is what visiting all 20 costs: 20 timeouts).

Peak RSS is ru_maxrss from wait4(): the largest single process of the measured process tree
(the process itself and every descendant it waited for), not a sum. For bash that is the
largest of bash, nc, curl, pgrep, ps. Every measured command is exec'd by a fork of /bin/sh,
not by this Python process: exec() keeps the exec-ing process's high-water RSS, so a command
posix_spawn()ed straight from Python would report at least Python's own RSS (~10-20 MiB here).
This script is their subreaper and reaps them itself; wall time runs from releasing the forked
sh (just before its exec) to the reap.
"""
import ctypes, json, os, platform, re, selectors, shutil, signal, socket, statistics
import subprocess, sys, tempfile, threading, time, urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "autoheal")
# Another build to measure beside this one on the same workload, in the same run (an earlier
# commit's `target/release/autoheal`): AUTOHEAL_BASELINE=/path/to/autoheal.
BASELINE = os.environ.get("AUTOHEAL_BASELINE")
SIZES = (10, 100, 500, 2000)
AH_WARMUP, AH_RUNS = 2, 15                     # autoheal: warm-ups, measured runs
BASH_RUNS = {10: 5, 100: 3, 500: 3}            # the bash approach takes seconds at N=500
FLOOR = "cat /proc/[0-9]*/cmdline /proc/[0-9]*/stat >/dev/null 2>&1"
LISTENERS = 10                                 # tcp listeners, and as many HTTP servers
DEAD, DEAD_TIMEOUT, DEAD_RUNS = 20, 1, 5
DEAD_BASH_RUNS, DEAD_BASH_ALL_RUNS = 3, 1      # the non-aborting variant takes ~20 s a run
PID_FILE_EVERY = 5                             # one service in five uses pid_file

TAG = f"{os.getpid() % 100000:05d}"            # makes the command lines unique to this run
started_pids = []                              # every long-lived process this script started


def die(msg):
    raise SystemExit(f"tick_bench: {msg}")


# ---------------------------------------------------------------------------------- measuring

def set_child_subreaper():
    """Orphaned descendants are re-parented to us, so we can wait4() a grandchild."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(36, 1, 0, 0, 0) != 0:  # PR_SET_CHILD_SUBREAPER
        die(f"prctl(PR_SET_CHILD_SUBREAPER): {os.strerror(ctypes.get_errno())}")


def spawn_clean(argv, out_path):
    """Runs argv as a background child of a short-lived /bin/sh (so its RSS high-water mark
    starts from sh's, not Python's), reaps it as its subreaper, and returns (wall seconds,
    exit code, peak RSS KiB of the largest process in its tree). Output goes to out_path.

    The child waits on a pipe until sh has exited and been reaped, so it is then our child
    and nobody else can reap it; the wall time starts when it is let go."""
    pid_r, pid_w = os.pipe()
    go_r, go_w = os.pipe()
    out = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    script = '{ exec 3>&-; read _ <&4; exec "$@" 4<&-; } </dev/null & echo $! >&3'
    sh = os.posix_spawn("/bin/sh", ["sh", "-c", script, "sh", *argv], os.environ,
                        file_actions=[(os.POSIX_SPAWN_DUP2, out, 1),
                                      (os.POSIX_SPAWN_DUP2, out, 2),
                                      (os.POSIX_SPAWN_DUP2, pid_w, 3),
                                      (os.POSIX_SPAWN_DUP2, go_r, 4)])
    for fd in (pid_w, go_r, out):
        os.close(fd)
    data = b""
    while chunk := os.read(pid_r, 64):
        data += chunk
    os.close(pid_r)
    os.waitpid(sh, 0)
    child = int(data)
    t = time.perf_counter()
    os.close(go_w)  # EOF: the child's `read` returns and it execs argv
    _, status, usage = os.wait4(child, 0)
    wall = time.perf_counter() - t
    return wall, os.waitstatus_to_exitcode(status), usage.ru_maxrss


def read(path):
    with open(path, errors="replace") as f:
        return f.read()


def expect(code, want, what, out_path=None):
    if code != want:
        out = read(out_path)[-4000:] if out_path else ""
        die(f"{what}: exit {code}, expected {want}\n{out}")


# --------------------------------------------------------------------------------- workload

class Health(BaseHTTPRequestHandler):
    def do_GET(self):
        code, body = (200, b"ok\n") if self.path == "/health" else (404, b"not found\n")
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024


def start_http_servers(n):
    servers = []
    for _ in range(n):
        s = Server(("127.0.0.1", 0), Health)
        threading.Thread(target=s.serve_forever, daemon=True).start()
        servers.append(s)
    return servers


def start_tcp_listeners(n):
    """n listeners that accept and close every connection, served by one thread."""
    socks, sel = [], selectors.DefaultSelector()
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1024)
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
        socks.append(s)

    def serve():
        try:
            while True:
                for key, _ in sel.select():
                    try:
                        conn, _ = key.fileobj.accept()
                        conn.close()
                    except (BlockingIOError, InterruptedError):
                        pass
        except (OSError, ValueError):  # the sockets were closed at the end
            pass
    threading.Thread(target=serve, daemon=True).start()
    return socks


def black_hole():
    """A listener that never accepts: connects complete through the backlog, nothing answers.
    Each probe leaves one connection queued; the ~150 this script makes fit in the backlog (and
    were it full, the connects themselves would time out instead: the same outcome)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(4096)
    return s


def wait_listening(tcp_ports, http_urls):
    deadline = time.monotonic() + 10
    for port in tcp_ports:
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    die(f"tcp listener 127.0.0.1:{port} does not accept")
                time.sleep(0.05)
    for url in http_urls:
        while True:
            try:
                with urllib.request.urlopen(url, timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                die(f"http server {url} does not answer 200")
            time.sleep(0.05)


def start_sleeps(n, tmp, specs):
    """Tops specs up to n live processes with unique command lines (per-service liveness
    specs)."""
    os.makedirs(os.path.join(tmp, "pids"), exist_ok=True)
    sleep = shutil.which("sleep") or die("no sleep on the PATH")
    devnull = os.open(os.devnull, os.O_RDWR)
    for i in range(len(specs), n):
        arg = f"3600.{TAG}{i:04d}"  # gone in an hour even if this script is SIGKILLed
        pid = os.posix_spawn(sleep, ["sleep", arg], os.environ, file_actions=[
            (os.POSIX_SPAWN_DUP2, devnull, 0), (os.POSIX_SPAWN_DUP2, devnull, 1),
            (os.POSIX_SPAWN_DUP2, devnull, 2)])
        started_pids.append(pid)
        if i % PID_FILE_EVERY == PID_FILE_EVERY - 1:
            path = os.path.join(tmp, "pids", f"svc{i}.pid")
            with open(path, "w") as f:  # written after the process started, as a daemon does
                f.write(f"{pid}\n")
            specs.append(("pid_file", path))
        else:
            specs.append(("pname", f"^sleep {re.escape(arg)}$"))
    os.close(devnull)


def stop_all():
    for pid in started_pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    for pid in started_pids:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    started_pids.clear()


# ----------------------------------------------------------------------- config and bash script

def sq(s):
    """Single-quoted for YAML and for the shell (neither kind of string has a quote in it)."""
    assert "'" not in s
    return f"'{s}'"


def healthy_conf(n, specs, tcp_ports, http_urls, tmp):
    lines = ["settings:", f"  state_dir: {sq(os.path.join(tmp, f'state-{n}'))}",
             "  converge: 0", ""]
    for i in range(n):
        kind, value = specs[i]
        j = i % LISTENERS
        lines += [f"svc{i}:", f"  {kind}: {sq(value)}", "  dep:",
                  f"    - name: db{j}", "      host: 127.0.0.1", f"      port: {tcp_ports[j]}",
                  f"    - name: api{j}", f"      url: {http_urls[j]}",
                  f"  script: echo restart svc{i}", ""]
    return "\n".join(lines)


def liveness_cmd(kind, value):
    if kind == "pname":
        return f"pgrep -f {sq(value)} >/dev/null"
    return f"ps -p $(cat {sq(value)}) >/dev/null"


def healthy_bash(n, specs, tcp_ports, http_urls):
    """What the original generator emits: deps in file order, aborting at the first unready one,
    then the liveness check, else the start script."""
    lines = ["#!/bin/bash"]
    for i in range(n):
        j = i % LISTENERS
        lines += [f"# svc{i}",
                  f"nc -z -w 3 127.0.0.1 {tcp_ports[j]} || exit 1",
                  f"curl -sf -m 3 -o /dev/null {http_urls[j]} || exit 1",
                  f"{liveness_cmd(*specs[i])} || echo restart svc{i}"]
    return "\n".join(lines) + "\n"


def dead_specs():
    return [f"^no-such-process-{TAG}-{i}$" for i in range(DEAD)]


def dead_conf(urls, tmp):
    lines = ["settings:", f"  state_dir: {sq(os.path.join(tmp, 'state-dead'))}",
             "  converge: 0", ""]
    for i, (regex, url) in enumerate(zip(dead_specs(), urls)):
        lines += [f"dead{i}:", f"  pname: {sq(regex)}", "  dep:",
                  f"    - name: api{i}", f"      url: {url}", f"      timeout: {DEAD_TIMEOUT}s",
                  "  script: 'true'", ""]
    return "\n".join(lines)


def dead_bash(urls, abort):
    lines = ["#!/bin/bash"]
    for regex, url in zip(dead_specs(), urls):
        probe = f"curl -sf -m {DEAD_TIMEOUT} -o /dev/null {url}"
        live = f"pgrep -f {sq(regex)} >/dev/null || true"
        lines += [f"{probe} || exit 1", live] if abort else [f"if {probe}; then {live}; fi"]
    return "\n".join(lines) + "\n"


def write(path, text):
    with open(path, "w") as f:
        f.write(text)
    return path


# ------------------------------------------------------------------------------------ report

def machine():
    model = "?"
    for line in read("/proc/cpuinfo").splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem = next((l.split()[1] for l in read("/proc/meminfo").splitlines()
                if l.startswith("MemTotal:")), "0")
    usable = len(os.sched_getaffinity(0))
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip() or "?"
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    load = read("/proc/loadavg").split()[0]
    return (f"machine: {model}, {os.cpu_count()} logical cores ({usable} usable), "
            f"{int(mem) / 1048576:.1f} GiB RAM, Linux {platform.release()}, "
            f"load average {load} at start{' (busy: figures will be noisy)' if float(load) > 0.5 * usable else ''}\n"
            f"autoheal: release build of {commit}{' + uncommitted changes' if dirty else ''}")


def ms(s):
    return f"{s * 1000:.1f}"


def mib(kib):
    return f"{kib / 1024:.1f}"


def table(header, rows):
    widths = [max(len(str(r[c])) for r in [header] + rows) for c in range(len(header))]
    fmt = lambda r: "  ".join(str(v).rjust(w) for v, w in zip(r, widths))
    print(fmt(header))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print(fmt(r))


# -------------------------------------------------------------------------------------- main

def bench_interleaved(variants, tmp):
    """variants: (argv, expected exit code or None for any, what). Runs each once in turn,
    AH_WARMUP rounds unmeasured then AH_RUNS measured, each round starting one further along
    (so that no command always runs right after the same one). Returns, per variant, its wall
    times and its peak RSS over the measured runs."""
    out = os.path.join(tmp, "out.txt")
    walls = [[] for _ in variants]
    peaks = [0 for _ in variants]
    for r in range(AH_WARMUP + AH_RUNS):
        for k in range(len(variants)):
            i = (k + r) % len(variants)
            argv, want, what = variants[i]
            wall, code, rss = spawn_clean(argv, out)
            if want is not None:
                expect(code, want, what, out)
            if r >= AH_WARMUP:
                walls[i].append(wall)
                peaks[i] = max(peaks[i], rss)
    return list(zip(walls, peaks))


def bench_bash(script, runs, want, what, tmp, quiet=True):
    out = os.path.join(tmp, "out.txt")
    walls, peak = [], 0
    for _ in range(runs):
        wall, code, rss = spawn_clean(["/bin/bash", script], out)
        expect(code, want, what, out)
        if quiet and read(out).strip():  # a service judged dead: the workload is broken
            die(f"{what}: unexpected output\n{read(out)[-4000:]}")
        walls.append(wall)
        peak = max(peak, rss)
    return walls, peak


def verify_healthy(conf, n, tmp):
    """One `status --json` before measuring: every service alive and every dep ready."""
    out = os.path.join(tmp, "status.json")
    for attempt in range(5):
        _, code, _ = spawn_clean([BINARY, "status", "-c", conf, "--json"], out)
        try:
            report = json.loads(read(out))
        except ValueError:
            die(f"status --json did not print JSON (exit {code}):\n{read(out)[-4000:]}")
        bad = [s["name"] + ": " + str(s.get("dead_because") or s.get("reason"))
               for s in report["services"] if not s["alive"]]
        bad += [f"{s['name']} dep {d['name']}: {d.get('reason')}"
                for s in report["services"] for d in s["deps"] if not d["ready"]]
        if code == 0 and not bad and len(report["services"]) == n:
            return
        time.sleep(0.5)
    die(f"workload for N={n} is not healthy (status exit {code}):\n" + "\n".join(bad[:20]))


def parse_args():
    global SIZES, AH_RUNS
    args = sys.argv[1:]
    opts = {"bash": True, "dead": True}
    while args:
        a = args.pop(0)
        if a == "--sizes" and args:
            SIZES = tuple(sorted(int(n) for n in args.pop(0).split(",")))
        elif a == "--runs" and args:
            AH_RUNS = int(args.pop(0))
        elif a in ("--no-bash", "--no-dead"):
            opts[a[5:]] = False
        else:
            die(f"unknown argument {a!r}; see the docstring for usage")
    return opts


def main():
    opts = parse_args()
    for tool in ("bash", "curl", "nc", "pgrep", "ps"):
        if not shutil.which(tool):
            die(f"`{tool}` is not on the PATH (nc: apt-get install netcat-openbsd)")
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    set_child_subreaper()
    print(machine())
    t_start = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="autoheal-tick-bench-")
    servers, socks = [], []
    try:
        servers = start_http_servers(LISTENERS)
        socks = start_tcp_listeners(LISTENERS)
        hole = black_hole()
        socks.append(hole)
        tcp_ports = [s.getsockname()[1] for s in socks[:LISTENERS]]
        http_urls = [f"http://127.0.0.1:{s.server_address[1]}/health" for s in servers]
        wait_listening(tcp_ports, http_urls)
        specs = []

        # 1. All healthy.
        rows = []
        for n in SIZES:
            start_sleeps(n, tmp, specs)
            conf = write(os.path.join(tmp, f"conf-{n}.yaml"),
                         healthy_conf(n, specs, tcp_ports, http_urls, tmp))
            verify_healthy(conf, n, tmp)
            nprocs = sum(1 for d in os.listdir("/proc") if d.isdigit())
            bash_med = bash_peak = None
            if opts["bash"] and n in BASH_RUNS:
                script = write(os.path.join(tmp, f"original-{n}.sh"),
                               healthy_bash(n, specs, tcp_ports, http_urls))
                bash_walls, bash_peak = bench_bash(script, BASH_RUNS[n], 0, f"bash N={n}", tmp)
                bash_med = statistics.median(bash_walls)
            builds = [("autoheal", BINARY)] + ([("baseline", BASELINE)] if BASELINE else [])
            # `run` also with the Prometheus textfile written (this build's --metrics; the
            # baseline may not have it), to see what the sink costs.
            metrics = ["--metrics", os.path.join(tmp, f"textfile-{n}", "autoheal.prom")]
            os.makedirs(os.path.dirname(metrics[1]), exist_ok=True)
            labels = [(f"floor: sh -c '{FLOOR.split(' >')[0]}'", ["/bin/sh", "-c", FLOOR], None,
                       False)]
            for cmd in (["run"], ["status", "--json"], ["check"]):
                runs = [(label, binary, []) for label, binary in builds]
                if cmd == ["run"]:
                    runs.insert(1, ("autoheal", BINARY, metrics))
                for label, binary, extra in runs:
                    cmd_shown = cmd + (["--metrics"] if extra else [])
                    # check is a reference: parsing only, no probing
                    labels.append((label + " " + " ".join(cmd_shown),
                                   [binary, *cmd, "-c", conf, *extra], 0, cmd[0] != "check"))
            results = bench_interleaved([(argv, want, f"{label} N={n}")
                                         for label, argv, want, _ in labels], tmp)
            if not os.path.isfile(metrics[1]):
                die(f"run --metrics N={n} wrote no {metrics[1]}")
            floor = statistics.median(results[0][0])
            for (label, _, _, compare), (walls, peak) in zip(labels, results):
                med = statistics.median(walls)
                bash = compare and bash_med is not None
                rows.append([n, nprocs, label, ms(med), ms(min(walls)), mib(peak),
                             f"{med / floor:.2f}", ms(bash_med) if bash else "-",
                             mib(bash_peak) if bash else "-",
                             f"{bash_med / med:.0f}x" if bash else "-"])
        print(f"\n1. All-healthy tick: N live services, each with a liveness check (pname, or "
              f"pid_file for 1 in {PID_FILE_EVERY})\n   and 2 deps (tcp + http) on "
              f"{LISTENERS} + {LISTENERS} loopback listeners; procs: the processes in /proc. "
              f"Every command: median and\n   min of {AH_RUNS} interleaved runs after "
              f"{AH_WARMUP} warm-ups; x floor: its median over the floor's. Bash (original "
              f"approach):\n   median of "
              f"{'/'.join(str(v) for v in BASH_RUNS.values())} runs for N = "
              f"{'/'.join(str(k) for k in BASH_RUNS)}. Peak RSS: largest single process of the "
              f"tree.\n")
        table(["N", "procs", "command", "median ms", "min ms", "peak MiB", "x floor",
               "bash median ms", "bash peak MiB", "bash/autoheal"], rows)
        if BASELINE:
            print(f"\nbaseline: {BASELINE}")
        runs = {r[0]: r for r in rows if r[2] == "autoheal run"}
        if 500 in runs:
            print(f"\ntarget (issue 12): the 500-service run within 1.2x of the floor: "
                  f"{runs[500][6]}x")
        if len(runs) > 1:
            lo, hi = min((n for n in runs if n >= 100), default=min(runs)), max(runs)
            per = lambda n: float(runs[n][3]) / n
            # Linear: each service costs the same more, whatever N (a fixed cost stays).
            steps = sorted(n for n in runs if n >= lo)
            more = [f"{(float(runs[b][3]) - float(runs[a][3])) / (b - a) * 1000:.0f} us"
                    for a, b in zip(steps, steps[1:])]
            print(f"linear from {lo} to {hi}: {hi / lo:.0f}x the services, "
                  f"{float(runs[hi][3]) / float(runs[lo][3]):.1f}x the time; each service more "
                  f"costs, from one N to the next: {', '.join(more)}")

        if not opts["dead"]:
            return
        # 2. Dead services whose deps never answer.
        port = hole.getsockname()[1]
        urls = [f"http://127.0.0.1:{port}/dead{i}" for i in range(DEAD)]  # distinct targets
        conf = write(os.path.join(tmp, "conf-dead.yaml"), dead_conf(urls, tmp))
        out = os.path.join(tmp, "out.txt")
        ah = []
        for i in range(1 + DEAD_RUNS):  # one warm-up
            wall, code, _ = spawn_clean([BINARY, "run", "-c", conf], out)
            expect(code, 1, "autoheal run (dead services)", out)
            ah += [wall] if i else []
        ab, _ = bench_bash(write(os.path.join(tmp, "dead-abort.sh"), dead_bash(urls, True)),
                           DEAD_BASH_RUNS, 1, "bash (dead, aborting)", tmp, quiet=False)
        al, _ = bench_bash(write(os.path.join(tmp, "dead-all.sh"), dead_bash(urls, False)),
                           DEAD_BASH_ALL_RUNS, 0, "bash (dead, not aborting)", tmp, quiet=False)
        print(f"\n2. One tick, {DEAD} dead services, each with an http dep on a loopback "
              f"listener that never accepts\n   (distinct URLs, so no probe is shared), "
              f"timeout {DEAD_TIMEOUT}s, converge 0. Target: autoheal under 2 s.\n")
        table(["approach", "runs", "median s", "min s", "max s", "services visited"], [
            ["autoheal run (exit 1)", DEAD_RUNS, f"{statistics.median(ah):.2f}",
             f"{min(ah):.2f}", f"{max(ah):.2f}", f"{DEAD} (probes in parallel)"],
            ["original bash (aborts at 1st unready dep)", DEAD_BASH_RUNS,
             f"{statistics.median(ab):.2f}", f"{min(ab):.2f}", f"{max(ab):.2f}", "1"],
            ["original bash, going on past unready deps", DEAD_BASH_ALL_RUNS,
             f"{statistics.median(al):.2f}", f"{min(al):.2f}", f"{max(al):.2f}",
             f"{DEAD} (one after another)"]])
        print(f"\nbench wall time: {time.monotonic() - t_start:.0f} s")
    finally:
        stop_all()
        for s in servers:
            s.shutdown()
            s.server_close()
        for s in socks:
            s.close()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit("tick_bench: terminated"))
    main()
