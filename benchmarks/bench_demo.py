"""Load check for `facegen demo`: concurrent sample requests against a running demo.

    python benchmarks/bench_demo.py runs/demo/vae --clients 8 --requests 80 --count 16

Starts the demo on loopback in this process (the same ``serve`` that `facegen demo` calls,
default queue 16 and concurrency 2, or ``--queue-size``/``--concurrency``), or uses a demo
that is already running (``--url``). ``--clients`` threads then send ``--requests`` sample
requests in all through Gradio's HTTP API (``POST /gradio_api/call/sample``, then read
the event stream until the result): each a grid of ``--count`` faces from a different
seed, like many people pressing "New faces" at once. Prints requests/s, p50/p95/max
latency and the number of errors; requests the full queue turned away count as errors
and are listed by reason. A warm-up request first, so the model's first-call costs are
not timed.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time
import urllib.request
from collections import Counter

import numpy as np

ENDPOINT = "gradio_api/call/sample"


def sample_request(url: str, run: str, seed: int, count: int, timeout: float) -> None:
    """One sample request, start to finish; raises on any failure."""
    body = json.dumps({"data": [run, seed, count, None, 0]}).encode()
    request = urllib.request.Request(
        f"{url}{ENDPOINT}", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=timeout) as response:
        event_id = json.load(response)["event_id"]
    with urllib.request.urlopen(f"{url}{ENDPOINT}/{event_id}", timeout=timeout) as stream:
        event = None
        for raw in stream:
            line = raw.decode().strip()
            if line.startswith("event:"):
                event = line.split(":", 1)[1].strip()
            elif line.startswith("data:") and event in ("complete", "error"):
                if event == "error":
                    raise RuntimeError(f"the demo answered with an error: {line[5:].strip()}")
                return
    raise RuntimeError("the event stream ended without a result")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="*", help="run folders to serve (unless --url)")
    parser.add_argument(
        "--url", default=None, help="a demo already running, e.g. http://127.0.0.1:7860/"
    )
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=80)
    parser.add_argument("--count", type=int, default=16, help="faces per request")
    parser.add_argument("--queue-size", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=120.0)
    args = parser.parse_args()

    app = studio = None
    if args.url:
        url = args.url.rstrip("/") + "/"
        run = args.runs[0] if args.runs else "vae"
    else:
        from facegen.demo.app import serve
        from facegen.demo.studio import Studio
        from facegen.run import load_run

        studio = Studio([load_run(path) for path in args.runs])
        app, url = serve(
            studio, port=None, queue_size=args.queue_size, concurrency=args.concurrency
        )
        run = studio.names[0]
    print(f"demo {url}  run {run}  {os.cpu_count()} cores  load {os.getloadavg()[0]:.2f}")
    sample_request(url, run, 0, args.count, args.timeout)  # warm-up

    latencies: list[float] = []
    errors: Counter[str] = Counter()
    lock = threading.Lock()
    seeds = iter(range(1, args.requests + 1))

    def client() -> None:
        while True:
            with lock:
                seed = next(seeds, None)
            if seed is None:
                return
            start = time.perf_counter()
            try:
                sample_request(url, run, seed, args.count, args.timeout)
            except Exception as error:  # every failure is counted, by kind
                with lock:
                    errors[f"{type(error).__name__}: {str(error)[:100]}"] += 1
                continue
            with lock:
                latencies.append(time.perf_counter() - start)

    threads = [threading.Thread(target=client) for _ in range(args.clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    if app is not None:
        app.close()
        studio.close()

    done = np.array(latencies)
    print(
        f"{args.clients} clients, {args.requests} requests of {args.count} faces "
        f"(queue {args.queue_size}, concurrency {args.concurrency}) in {elapsed:.1f} s"
    )
    if len(done):
        p50, p95 = np.percentile(done, [50, 95])
        print(
            f"  {len(done) / elapsed:.2f} requests/s  latency p50 {p50 * 1000:.0f} ms  "
            f"p95 {p95 * 1000:.0f} ms  max {done.max() * 1000:.0f} ms"
        )
    print(f"  errors {sum(errors.values())}")
    for reason, count in errors.most_common():
        print(f"    {count} x {reason}")


if __name__ == "__main__":
    main()
