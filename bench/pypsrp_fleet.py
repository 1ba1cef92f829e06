"""The reference peer: the same inventory as bench/job.yaml with pypsrp's WSMan client and a
thread pool, the way fleet inventory is commonly scripted in Python.

Each worker opens one WSMan connection per host, enumerates the classes with Enumerate/Pull
(OptimizeEnumeration, MaxElements 50: the simulator's page, which cimrun gets too by asking for
32,000 as WinRM's default MaxBatchItems), parses every instance into a dict and
appends it as a JSON line to the class's output file. Prints one JSON line of totals.
"""

import argparse
import json
import os
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "peers"))
from pypsrp_enum import enumerate_class  # noqa: E402  (the interop test's Enumerate/Pull loop)
from pypsrp.wsman import WSMan  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts-file", required=True)
    ap.add_argument("--port", type=int, default=5985)
    ap.add_argument("--auth", default="basic")
    ap.add_argument("--user", default="cimrun")
    ap.add_argument("--password", default="P@ssw0rd!")
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--class", dest="classes", action="append", required=True)
    args = ap.parse_args()
    hosts = [h.strip() for h in open(args.hosts_file) if h.strip()]
    os.makedirs(args.out, exist_ok=True)
    files = {c: open(os.path.join(args.out, c + ".ndjson"), "w") for c in args.classes}
    lock = threading.Lock()
    totals = {"instances": 0, "requests": 0, "hosts_ok": 0, "hosts_failed": 0}

    def one(host):
        try:
            wsman = WSMan(
                host,
                port=args.port,
                ssl=False,
                auth=args.auth,
                encryption="never" if args.auth == "basic" else "auto",
                username=args.user,
                password=args.password,
                cert_validation=False,
                connection_timeout=10,
                read_timeout=70,
                operation_timeout=60,
                no_proxy=True,
            )
            results = []
            requests = 0
            with wsman:
                for cls in args.classes:
                    instances, n = enumerate_class(wsman, cls, [], "", 50)
                    requests += n
                    results.append((cls, instances))
            with lock:
                for cls, instances in results:
                    f = files[cls]
                    for inst in instances:
                        inst["PSComputerName"] = host
                        f.write(json.dumps(inst) + "\n")
                    totals["instances"] += len(instances)
                totals["requests"] += requests
                totals["hosts_ok"] += 1
        except BaseException as e:  # a failed host must not stop the others
            with lock:
                totals["hosts_failed"] += 1
                totals.setdefault("first_error", "%s: %r" % (host, e))

    t0 = time.monotonic()
    with ThreadPoolExecutor(max_workers=args.threads) as pool:
        list(pool.map(one, hosts))
    for f in files.values():
        f.close()
    totals["wall_s"] = time.monotonic() - t0
    print(json.dumps(totals))


if __name__ == "__main__":
    main()
