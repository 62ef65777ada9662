"""Console viewers for bench_pipeline --viewers: N browsers' worth of requests, in their own
process (as browsers are): each viewer fetches its station's live JPEG at the page's rate
and the line state once a second, with the bearer token. Prints what it fetched on exit.

    python bench/console_viewers.py --port 9310 --token T --station l1/s1 --viewers 3 --fps 5
"""

from __future__ import annotations

import argparse
import signal
import threading
import time
import urllib.error
import urllib.request


def viewer(base: str, token: str, station: str, vid: str, fps: float, stop: threading.Event,
           counts: dict[str, int]) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    n, next_state = 0, 0.0
    while not stop.is_set():
        t0 = time.monotonic()
        paths = [f"/console/live/{station}.jpg?viewer={vid}&n={n}"]
        if t0 >= next_state:
            paths.append("/console/api/line")
            next_state = t0 + 1.0
        for path in paths:
            try:
                with urllib.request.urlopen(urllib.request.Request(base + path, headers=headers),
                                            timeout=2) as resp:
                    resp.read()
                    counts["images" if ".jpg" in path else "states"] += 1
            except (urllib.error.URLError, OSError):  # not up yet, or no image yet (503)
                counts["errors"] += 1
                stop.wait(0.2)
        n += 1
        stop.wait(max(0.0, 1.0 / fps - (time.monotonic() - t0)))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--token", required=True)
    ap.add_argument("--station", default="l1/s1")
    ap.add_argument("--viewers", type=int, default=1)
    ap.add_argument("--fps", type=float, default=5.0)
    args = ap.parse_args()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    counts = {"images": 0, "states": 0, "errors": 0}
    threads = [threading.Thread(target=viewer, args=(f"http://127.0.0.1:{args.port}", args.token,
                                                    args.station, f"bench{i}", args.fps, stop,
                                                    counts)) for i in range(args.viewers)]
    for t in threads:
        t.start()
    try:
        while not stop.is_set():
            stop.wait(0.2)
    except KeyboardInterrupt:
        stop.set()
    for t in threads:
        t.join(3)
    print(f"viewers={args.viewers} images={counts['images']} states={counts['states']} "
          f"errors={counts['errors']}", flush=True)


if __name__ == "__main__":
    main()
