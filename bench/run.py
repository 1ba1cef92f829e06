#!/usr/bin/env python3
"""Fleet benchmark: one command that starts the fleet simulator and runs the same inventory
(5 classes per host) with cimrun and with the pypsrp reference client, side by side.

    .venv/bin/python bench/run.py                       # the full matrix
    .venv/bin/python bench/run.py --sizes 100 --latencies 0 --clients cimrun

Needs the release binaries: cargo build --release --features testkit --bins
For every (hosts, latency) it starts one simulator, runs each client against it in turn, and
measures the client process alone: wall time, user+sys CPU seconds and peak RSS (wait4's
rusage of that child). Round trips are counted by the simulator: every HTTP request it answers,
handshake legs included, since the latency applies to each. Prints a Markdown table and
writes bench/results/<timestamp>.json.
"""

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
CLASSES = ["Win32_OperatingSystem", "Win32_ComputerSystem", "Win32_BIOS", "Win32_LogicalDisk", "Win32_Service"]
PASSWORD = "P@ssw0rd!"

JOB = """version: 1
credentials:
  bench:
    username: cimrun
    password: {{ env: CIMRUN_BENCH_PASSWORD }}
options:
  plain:
    allow_unencrypted: {allow_unencrypted}
sessions:
  - name: fleet
    computers_from: {hosts_file}
    credential: bench
    authentication: {auth}
    options: plain
    port: 5985
queries:
{queries}
sinks:
  - type: csv
    path: "{{{{query}}}}.csv"
run:
  throttle: {throttle}
  retries: 0
  fail_if: never
"""


class Simulator:
    """The fleet simulator as a child process, driven over its stdin."""

    def __init__(self, binary, hosts, latency_ms, auth, hosts_file, lifetime_s):
        self.proc = subprocess.Popen(
            [binary, "--hosts", str(hosts), "--latency", "%dms" % latency_ms, "--auth", auth,
             "--hosts-file", hosts_file, "--lifetime", "%ds" % lifetime_s, "--workers", "1"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit("the simulator did not start (is another one still listening on 127.1.x.y:5985?)")
        self.ready = json.loads(line)

    def stats(self):
        self.proc.stdin.write("stats\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())

    def stop(self):
        self.proc.stdin.close()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def high_water_kb(pid):
    """The process's peak resident set (VmHWM) so far, in KiB; 0 once it is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def measured(argv, env=None, timeout=None):
    """Runs argv; returns (wall s, user+sys s, peak RSS MB, exit code, stdout) of that process alone.

    Peak RSS is the child's own VmHWM, read every 20 ms while it runs (it only grows, so the
    last reading before the exit is the peak but for its last 20 ms). wait4's ru_maxrss is not
    used for it: the child is started by vfork from this process, and Linux counts the parent's
    resident set at the exec into the child's maximum, so after a large fleet (whose run.json
    this script has read) every following row would report this script's size instead."""
    t0 = time.monotonic()
    out = tempfile.TemporaryFile()
    proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.DEVNULL, env=env)
    deadline = None if timeout is None else t0 + timeout
    peak_kb = 0
    while True:
        peak_kb = max(peak_kb, high_water_kb(proc.pid))
        pid, status, ru = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if deadline and time.monotonic() > deadline:
            proc.kill()
        time.sleep(0.02)
    wall = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    out.seek(0)
    text = out.read().decode(errors="replace")
    return wall, ru.ru_utime + ru.ru_stime, peak_kb / 1024.0, proc.returncode, text


def run_cimrun(args, hosts_file, work):
    job = os.path.join(work, "job.yaml")
    queries = "".join("  - name: %s\n    class: %s\n" % (c, c) for c in CLASSES)
    with open(job, "w") as f:
        f.write(JOB.format(hosts_file=hosts_file, auth=args.auth, throttle=args.throttle, queries=queries,
                           allow_unencrypted="true" if args.auth == "basic" else "false"))
    out = os.path.join(work, "cimrun-out")
    env = dict(os.environ, CIMRUN_BENCH_PASSWORD=PASSWORD, RUST_LOG="cimrun=error")
    wall, cpu, rss, code, _ = measured(
        [args.cimrun, "run", job, "--out", out, "--progress", "never"], env=env, timeout=args.timeout)
    with open(os.path.join(out, "run.json")) as f:
        report = json.load(f)
    summary = report.get("summary", {})
    rows = sum(t.get("rows", 0) for t in report.get("tasks", []))
    failed = sum(1 for t in report.get("tasks", []) if t.get("status") != "ok")
    return {"wall_s": wall, "cpu_s": cpu, "rss_mb": rss, "exit": code, "instances": rows,
            "failed_tasks": failed, "summary": summary}


def run_pypsrp(args, hosts_file, work):
    out = os.path.join(work, "pypsrp-out")
    argv = [args.python, os.path.join(ROOT, "bench", "pypsrp_fleet.py"), "--hosts-file", hosts_file,
            "--threads", str(args.throttle), "--out", out, "--auth", args.auth, "--password", PASSWORD]
    for c in CLASSES:
        argv += ["--class", c]
    wall, cpu, rss, code, text = measured(argv, timeout=args.timeout)
    totals = json.loads(text.strip().splitlines()[-1]) if text.strip() else {}
    return {"wall_s": wall, "cpu_s": cpu, "rss_mb": rss, "exit": code, "instances": totals.get("instances", 0),
            "failed_hosts": totals.get("hosts_failed"), "first_error": totals.get("first_error")}


def run_client(args, sim, client, hosts, latency, hosts_file, work):
    """One measured run of a client against the running simulator."""
    before = sim.stats()
    r = (run_cimrun if client == "cimrun" else run_pypsrp)(args, hosts_file, work)
    after = sim.stats()
    r.update(client=client, hosts=hosts, latency_ms=latency,
             requests=after["requests"] - before["requests"],
             http_requests=after["http_requests"] - before["http_requests"],
             connections=after["connections"] - before["connections"],
             open_contexts_after=after["open_contexts"])
    # Every HTTP exchange is a round trip the latency applies to, handshake legs included.
    rt = r["http_requests"] / hosts
    r["round_trips_per_host"] = rt
    r["operations_per_host"] = r["requests"] / hosts
    r["bound_s"] = rt * latency / 1000.0 * math.ceil(hosts / args.throttle)
    r["instances_per_s"] = r["instances"] / r["wall_s"] if r["wall_s"] else 0
    r["cpu_us_per_instance"] = 1e6 * r["cpu_s"] / r["instances"] if r["instances"] else None
    return r


def median_run(runs):
    """The run with the median CPU time (the lower middle one of an even count), with the CPU
    times of all runs beside it."""
    ordered = sorted(runs, key=lambda r: r["cpu_s"])
    chosen = dict(ordered[(len(ordered) - 1) // 2])
    if len(runs) > 1:
        chosen["cpu_s_runs"] = [r["cpu_s"] for r in runs]
        chosen["wall_s_runs"] = [r["wall_s"] for r in runs]
    return chosen


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100,1000,10000")
    ap.add_argument("--latencies", default="0,50", help="injected per-response latency, ms")
    ap.add_argument("--clients", default="cimrun,pypsrp")
    ap.add_argument("--peer-max-hosts", type=int, default=1000,
                    help="run the Python peer only up to this many hosts (it is CPU-bound)")
    ap.add_argument("--throttle", type=int, default=64, help="cimrun throttle = peer thread pool size (64 is cimrun's default)")
    ap.add_argument("--auth", default="basic", choices=["basic", "ntlm"])
    ap.add_argument("--timeout", type=int, default=900, help="per client run, seconds")
    ap.add_argument("--repeat", type=int, default=1,
                    help="runs per client and row, alternating the clients; the table shows the run with the "
                         "median CPU time of each client, the JSON keeps every run")
    ap.add_argument("--cimrun", default=os.path.join(ROOT, "target", "release", "cimrun"))
    ap.add_argument("--sim", default=os.path.join(ROOT, "target", "release", "cimrun-fleet-sim"))
    ap.add_argument("--python", default=os.path.join(ROOT, ".venv", "bin", "python"))
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    latencies = [int(s) for s in args.latencies.split(",")]
    clients = args.clients.split(",")
    results = []
    for hosts in sizes:
        for latency in latencies:
            work = tempfile.mkdtemp(prefix="cimrun-bench-")
            hosts_file = os.path.join(work, "hosts.txt")
            sim = Simulator(args.sim, hosts, latency, args.auth, hosts_file, lifetime_s=args.timeout * 3)
            try:
                runs = {c: [] for c in clients}
                # Alternated, so a slow spell of the shared machine falls on both clients.
                for _ in range(max(args.repeat, 1)):
                    for client in clients:
                        if client == "pypsrp" and hosts > args.peer_max_hosts:
                            continue
                        r = run_client(args, sim, client, hosts, latency, hosts_file, work)
                        runs[client].append(r)
                        print(json.dumps(r), file=sys.stderr, flush=True)
                for client in clients:
                    if runs[client]:
                        results.append(median_run(runs[client]))
            finally:
                sim.stop()
                subprocess.run(["rm", "-rf", work])
    print(table(results, args))
    os.makedirs(os.path.join(ROOT, "bench", "results"), exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    with open(os.path.join(ROOT, "bench", "results", stamp + ".json"), "w") as f:
        json.dump({"machine": machine(), "throttle": args.throttle, "auth": args.auth, "results": results}, f, indent=1)


def table(results, args):
    lines = ["| hosts | latency | client | round trips/host | wall s | bound s | wall/bound | CPU s | CPU µs/inst "
             "| peak RSS MB | instances | inst/s | failed | wall ratio | CPU ratio |",
             "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        peer = next((p for p in results if p["client"] == "pypsrp" and p["hosts"] == r["hosts"]
                     and p["latency_ms"] == r["latency_ms"]), None)
        ratio_wall = ratio_cpu = ""
        if r["client"] == "cimrun" and peer:
            ratio_wall = "1 : %.1f" % (peer["wall_s"] / r["wall_s"])
            if r["cpu_us_per_instance"] and peer["cpu_us_per_instance"]:
                ratio_cpu = "1 : %.0f" % (peer["cpu_us_per_instance"] / r["cpu_us_per_instance"])
        closeness = "%.2f×" % (r["wall_s"] / r["bound_s"]) if r["bound_s"] else "–"
        failed = r.get("failed_tasks", r.get("failed_hosts"))
        lines.append("| {:,} | {} ms | {} | {:.2f} | {:.2f} | {:.2f} | {} | {:.2f} | {} | {:.0f} | {:,} | {:,.0f} | {} | {} | {} |".format(
            r["hosts"], r["latency_ms"], r["client"], r["round_trips_per_host"], r["wall_s"], r["bound_s"], closeness,
            r["cpu_s"],
            "%.1f" % r["cpu_us_per_instance"] if r["cpu_us_per_instance"] else "–", r["rss_mb"],
            r["instances"], r["instances_per_s"], failed, ratio_wall, ratio_cpu))
    return "\n".join(lines)


def machine():
    cpu = ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((l.split(":", 1)[1].strip() for l in f if l.startswith("model name")), "")
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as f:
            mem = f.readline().split(":", 1)[1].strip()
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "mem": mem, "kernel": platform.release(),
            "python": platform.python_version(), "load_before": os.getloadavg()}


if __name__ == "__main__":
    main()
