#!/usr/bin/env python3
"""DCOM benchmark: cimrun, impacket's wmiquery-style loop and aiowmi against the same emulator.

For each row count and injected latency, starts tests/peers/dcom_emulator.py, runs each client
to completion, and measures wall time, client CPU (user + system of the client process), rows
per second and round trips per 1,000 instances (binds, alter_contexts and requests the emulator
answered, over every connection the client opened). Writes a Markdown table with the machine.

Usage (from the crate root):
  .venv/bin/python bench/dcom.py [--rows 1000,10000] [--latency-ms 0,20] [--clients cimrun,impacket,aiowmi]
                                 [--cases 1000:0,10000:0] [--cimrun target/release/cimrun] [--out docs/benchmarks-dcom.md]
Every emulator exits by itself (--lifetime) and every client is killed after --client-timeout.
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEERS = os.path.join(ROOT, "tests", "peers")
USER, DOMAIN, PASSWORD = "alice", "LAB", "Secret-123"

JOB = """version: 1
options:
  legacy:
    protocol: dcom
    packet_privacy: true
credentials:
  lab:
    username: '{domain}\\{user}'
    password: {{ env: CIMRUN_BENCH_PW }}
sessions:
  - name: dcom
    computers: [127.0.0.1]
    port: {port}
    credential: lab
    options: legacy
    connect_timeout: 5s
    operation_timeout: 60s
queries:
  - name: utc
    class: Win32_UTCTime
sinks:
  - type: csv
    path: '{{{{query}}}}.csv'
run:
  retries: 0
"""


def start_emulator(python, testdata, log, rows, latency, lifetime):
    proc = subprocess.Popen(
        [python, os.path.join(PEERS, "dcom_emulator.py"), "--testdata", testdata, "--log", log,
         "--rows", str(rows), "--latency-ms", str(latency), "--lifetime", str(lifetime), "--log-on-close"],
        stdout=subprocess.PIPE, text=True)
    ports = json.loads(proc.stdout.readline())
    return proc, ports["activation_port"]


def timed(cmd, env, timeout):
    """Runs cmd; returns (wall seconds, CPU seconds of the child, stdout)."""
    started = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = started + timeout
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            proc.kill()
            pid, status, usage = os.wait4(proc.pid, 0)
            raise RuntimeError(f"{cmd[0]} timed out after {timeout}s")
        time.sleep(0.002)
    wall = time.monotonic() - started
    out, err = proc.stdout.read(), proc.stderr.read()
    if os.waitstatus_to_exitcode(status) != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed: {err.decode(errors='replace')[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime, out


def run_cimrun(binary, port, rows, workdir, timeout):
    job = os.path.join(workdir, "job.yaml")
    with open(job, "w") as f:
        f.write(JOB.format(domain=DOMAIN, user=USER, port=port))
    out = os.path.join(workdir, "out")
    env = dict(os.environ, CIMRUN_BENCH_PW=PASSWORD)
    wall, cpu, _ = timed([binary, "run", "--progress", "never", "--out", out, job], env, timeout)
    with open(os.path.join(out, "run.json")) as f:
        got = json.load(f)["tasks"][0]["rows"]
    return wall, cpu, got


def run_python_client(python, script, port, timeout):
    cmd = [python, os.path.join(PEERS, script), str(port), USER, PASSWORD, DOMAIN]
    wall, cpu, out = timed(cmd, dict(os.environ), timeout)
    return wall, cpu, json.loads(out)["rows"]


def round_trips(log):
    """Round trips over every connection, once the client's connections are all logged as closed."""
    with open(log) as f:
        conns = json.load(f)["connections"]
    return sum(c.get("round_trips", 0) for c in conns), len(conns)


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    load = os.getloadavg()
    return (f"{cpu}, {os.cpu_count()} logical CPUs, {platform.system()} {platform.release()}, "
            f"Python {platform.python_version()}; load average at start {load[0]:.2f}")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rows", default="1000,10000")
    p.add_argument("--latency-ms", default="0,20")
    p.add_argument("--cases", help="explicit ROWS:LATENCY pairs instead of the product, e.g. 1000:0,10000:0,1000:20")
    p.add_argument("--clients", default="cimrun,impacket,aiowmi")
    p.add_argument("--cimrun", default=os.path.join(ROOT, "target", "release", "cimrun"))
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--testdata", default=os.path.join(ROOT, "..", "shared", "testdata", "wmio"))
    p.add_argument("--client-timeout", type=float, default=900)
    p.add_argument("--out", default=os.path.join(ROOT, "docs", "benchmarks-dcom.md"))
    args = p.parse_args()
    if not os.path.exists(args.cimrun):
        sys.exit(f"no cimrun binary at {args.cimrun} (cargo build --release, or pass --cimrun)")

    if args.cases:
        cases = [(int(c.split(":")[0]), float(c.split(":")[1])) for c in args.cases.split(",")]
    else:
        cases = [(int(r), float(l)) for r in args.rows.split(",") for l in args.latency_ms.split(",")]
    results = []
    for rows, latency in cases:
        for client in args.clients.split(","):
            with tempfile.TemporaryDirectory() as work:
                log = os.path.join(work, "log.json")
                emu, port = start_emulator(args.python, args.testdata, log, rows, latency,
                                           args.client_timeout + 30)
                try:
                    if client == "cimrun":
                        wall, cpu, got = run_cimrun(args.cimrun, port, rows, work, args.client_timeout)
                    elif client == "impacket":
                        wall, cpu, got = run_python_client(args.python, "dcom_impacket_client.py", port,
                                                           args.client_timeout)
                    elif client == "aiowmi":
                        wall, cpu, got = run_python_client(args.python, "dcom_aiowmi_client.py", port,
                                                           args.client_timeout)
                    else:
                        sys.exit(f"unknown client {client}")
                    # The emulator logs a connection when it closes; give it a moment.
                    time.sleep(0.3)
                    trips, conns = round_trips(log)
                finally:
                    emu.kill()
                    emu.wait()
            if got != rows:
                sys.exit(f"{client} returned {got} rows, expected {rows}")
            row = {"client": client, "rows": rows, "latency_ms": latency, "wall_s": wall, "cpu_s": cpu,
                   "rows_per_s": rows / wall, "round_trips": trips, "rt_per_1000": trips * 1000 / rows,
                   "connections": conns}
            results.append(row)
            print(json.dumps(row), flush=True)

    lines = ["# DCOM benchmark", "",
             "Generated by `bench/dcom.py` (one command; see its docstring). Each client runs alone against a",
             "fresh `tests/peers/dcom_emulator.py` serving `Win32_UTCTime` instances (the recorded Windows",
             "encoding) at packet privacy; the injected latency delays every bind, alter_context and request.",
             "Round trips are the exchanges the emulator answered over all the client's connections",
             "(activation included). Client CPU is user + system time of the client process.", "",
             f"Machine: {machine()}.", "",
             f"Command: `bench/dcom.py {' '.join(sys.argv[1:])}`; cimrun binary "
             f"`{os.path.relpath(args.cimrun, ROOT)}` (a `debug` build is unoptimised: its rows/s and CPU "
             "understate cimrun's; round trips do not depend on the build).", "",
             "| client | rows | latency | wall s | rows/s | round trips | per 1,000 rows | client CPU s |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        lines.append(f"| {r['client']} | {r['rows']} | {r['latency_ms']:g} ms | {r['wall_s']:.2f} | "
                     f"{r['rows_per_s']:.0f} | {r['round_trips']} | {r['rt_per_1000']:.1f} | {r['cpu_s']:.2f} |")
    lines.append("")
    by = {(r["client"], r["rows"], r["latency_ms"]): r for r in results}
    for (client, rows, latency), r in by.items():
        base = by.get(("impacket", rows, latency))
        if client == "cimrun" and base:
            lines.append(f"- {rows} rows, {latency:g} ms: cimrun makes {base['round_trips'] / r['round_trips']:.0f}x "
                         f"fewer round trips than impacket and is {r['rows_per_s'] / base['rows_per_s']:.1f}x faster.")
    with open(args.out, "w") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
