"""How fast the explorer page is: cold start, server time per click, browser click -> image, 100k-point map draw.

    python benchmarks/app_latency.py [--model DIR] [--clicks 200] [--browser-clicks 20] [--map-points 100000]
    python benchmarks/app_latency.py --load [--model DIR] [--clients 20] [--seconds 60] [--client http]
    python benchmarks/app_latency.py --soak [--clients 20] [--seconds 1800] [--plot benchmarks/results/app_soak.svg]
    python benchmarks/app_latency.py --start-only [--starts 5]   # app start to 'Running on' against bare `import torch, gradio`

Needs Debian's chromium for the browser rows (`apt-get install -y chromium`); prints a Markdown table.
`--load` instead starts `app.py` on localhost and has many API clients (gradio_client) click random map points
through the `/decode_point` endpoint at once: clicks answered, errors, latency, the server's memory.
`--soak` is `--load` for 30 minutes, sampling the server's RSS every 30 s, with a plot and the
first-vs-last latency and RSS-flatness rows.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]

# Records, in the page, when the mouse went down and when the current eye's new image had loaded.
LATENCY_PROBE = """
window.__probe = {down: 0, shown: []};
document.addEventListener('pointerdown', () => { window.__probe.down = performance.now(); }, true);
document.addEventListener('load', ev => {
  if (ev.target.tagName === 'IMG' && ev.target.closest('#current-eye')) window.__probe.shown.push(performance.now() - window.__probe.down);
}, true);
new MutationObserver(() => {
  const box = document.querySelector('.vaegan-map[data-ready="1"]');
  if (box && !window.__drawn) window.__drawn = performance.now();
}).observe(document, {subtree: true, attributes: true, attributeFilter: ['data-ready']});
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_app(model: str) -> tuple[subprocess.Popen, str]:
    """`python app.py --model model` on a free localhost port; returns the process and its URL once it serves."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "app.py", "--model", model, "--port", str(port)], cwd=ROOT,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in process.stdout:
        if "Running on" in line:
            # keep reading its output, or the app blocks once the pipe is full
            threading.Thread(target=process.stdout.read, daemon=True).start()
            return process, f"http://127.0.0.1:{port}/"
    raise RuntimeError(f"app.py exited ({process.wait()}) before serving")


def cold_start(model: str, runs: int = 3) -> tuple[list[float], list[float]]:
    """Seconds from `python app.py` to its 'Running on' line, and of a bare `python -c "import torch, gradio"`, run by turns.

    Taken by turns so that both see the same load on the machine; the bare imports are the floor
    that any Gradio page serving a torch model pays.
    """
    times, bare = [], []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "import torch, gradio"], cwd=ROOT, check=True, capture_output=True)
        bare.append(time.perf_counter() - start)
        start = time.perf_counter()
        process = subprocess.Popen([sys.executable, "app.py", "--model", model, "--port", str(free_port())], cwd=ROOT,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            for line in process.stdout:
                if "Running on" in line:
                    times.append(time.perf_counter() - start)
                    break
            else:
                raise RuntimeError("app.py exited before serving")
        finally:
            process.terminate()
            process.wait(timeout=30)
    return times, bare


def server_times(explorer, latent_map, clicks: int, upload: Path) -> dict[str, list[float]]:
    """Milliseconds per callback call, measured in-process (what the server spends per click, before encoding PNGs)."""
    import gradio as gr

    rng = np.random.default_rng(0)
    state = explorer.initial_state()
    times: dict[str, list[float]] = {"point click": [], "empty-space click": [], "slider": [], "upload (64 px PNG)": []}
    lo, hi = latent_map.xy.min(0), latent_map.xy.max(0)
    for i in range(clicks):
        start = time.perf_counter()
        state = explorer.on_point(state, gr.EventData(None, {"index": int(rng.integers(len(latent_map)))})).state
        times["point click"].append(time.perf_counter() - start)
        x, y = rng.uniform(lo, hi)
        start = time.perf_counter()
        explorer.on_map_click(state, gr.EventData(None, {"x": float(x), "y": float(y)}))
        times["empty-space click"].append(time.perf_counter() - start)
        start = time.perf_counter()
        explorer.on_slider(float(rng.uniform(-2, 2)), state)
        times["slider"].append(time.perf_counter() - start)
        if i < clicks // 4:
            start = time.perf_counter()
            explorer.on_upload(str(upload), state)
            times["upload (64 px PNG)"].append(time.perf_counter() - start)
    return {name: [1000 * t for t in values] for name, values in times.items()}


def synthetic_map(latent_map, n: int):
    """A map of n points shaped like the real one (real latents resampled with jitter), for the draw-time row."""
    from vaegan.latent_map import LatentMap

    rng = np.random.default_rng(0)
    pick = rng.integers(len(latent_map), size=n)
    return LatentMap(
        mu=latent_map.mu[pick] + rng.normal(0, 0.05, size=(n, latent_map.mu.shape[1])).astype(np.float32),
        xy=latent_map.xy[pick] + rng.normal(0, 0.08, size=(n, 2)).astype(np.float32),
        labels=latent_map.labels[pick],
        probe_weight=latent_map.probe_weight,
        probe_bias=latent_map.probe_bias,
        open_direction=latent_map.open_direction,
    )


def launch(model, latent_map):
    from vaegan.ui import build_demo, launch_options

    demo = build_demo(model, latent_map)
    demo.queue(default_concurrency_limit=max(2, min(8, os.cpu_count() or 1)))  # as app.py does
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_options())
    return demo, f"http://127.0.0.1:{port}/"


def browser_rows(model, latent_map, big_map, clicks: int) -> dict[str, float | list[float]]:
    from playwright.sync_api import sync_playwright

    executable = shutil.which("chromium")
    if executable is None:
        raise SystemExit("the browser rows need Debian's chromium: apt-get install -y chromium")
    results: dict[str, float | list[float]] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        demo, url = launch(model, latent_map)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.add_init_script(LATENCY_PROBE)
            page.goto(url)
            page.wait_for_selector('.vaegan-map[data-ready="1"]', timeout=60_000)
            results["map drawn after page load, %d points (ms)" % len(latent_map)] = page.evaluate("window.__drawn")
            points = page.evaluate("""() => {
              const box = document.querySelector('.vaegan-map'), L = box._fullLayout, r = box.getBoundingClientRect();
              const out = [];
              box.data.forEach(t => { for (let i = 0; i < t.x.length; i += 37) {
                const px = r.left + L.xaxis._offset + L.xaxis.l2p(t.x[i]), py = r.top + L.yaxis._offset + L.yaxis.l2p(t.y[i]);
                if (px > r.left + L.xaxis._offset + 20 && px < r.left + L.xaxis._offset + L.xaxis._length - 20
                    && py > r.top + L.yaxis._offset + 20 && py < r.top + L.yaxis._offset + L.yaxis._length - 20) out.push([px, py]);
              } });
              return out;
            }""")
            rng = np.random.default_rng(1)
            for k in rng.choice(len(points), size=min(clicks, len(points)), replace=False):
                x, y = points[k]
                before = len(page.evaluate("window.__probe.shown"))
                page.mouse.move(x, y, steps=3)
                page.wait_for_timeout(150)
                page.mouse.click(x, y)
                try:
                    page.wait_for_function(f"window.__probe.shown.length > {before}", timeout=5000)
                except Exception:  # noqa: BLE001 - a click that landed on an annotation or between points: skip it
                    pass
                page.wait_for_timeout(450)  # keep clicks apart: two within Plotly's delay are a double-click
            results["click -> decoded image shown (ms)"] = page.evaluate("window.__probe.shown")
            page.close()
        finally:
            demo.close()
        demo, url = launch(model, big_map)
        try:
            draws = []
            for _ in range(3):
                page = browser.new_page(viewport={"width": 1280, "height": 1000})
                page.add_init_script(LATENCY_PROBE)
                page.goto(url)
                page.wait_for_selector('.vaegan-map[data-ready="1"]', timeout=120_000)
                draws.append(page.evaluate("window.__drawn"))
                page.close()
            results["map drawn after page load, %d points (ms)" % len(big_map)] = draws
        finally:
            demo.close()
        browser.close()
    return results


Clicks = list[tuple[float, float]]  # (time.monotonic() when answered, latency ms) per click


def gradio_client_users(url: str, n_points: int, clients: int, stop: float) -> list[tuple[Clicks, list[str]]]:
    """Each user a `gradio_client.Client` in its own thread, clicking until `stop`: (clicks, errors) per user."""
    from gradio_client import Client

    def user(k: int, client: Client) -> tuple[Clicks, list[str]]:
        rng = np.random.default_rng(k)
        latencies, errors = [], []
        while time.monotonic() < stop:
            index = int(rng.integers(n_points))
            start = time.perf_counter()
            try:
                image, point = client.submit(index, api_name="/decode_point").result(timeout=60)
                if point["index"] != index or not Path(image).stat().st_size:
                    raise ValueError(f"wrong answer for #{index}: {point}")
                os.remove(image)  # keep nothing, as a browser tab: downloads stay small over a long run
            except Exception as error:  # noqa: BLE001 - counted and shown, the load goes on
                errors.append(f"#{index}: {error!r}"[:200])
            else:
                latencies.append((time.monotonic(), 1000 * (time.perf_counter() - start)))
        return latencies, errors

    with tempfile.TemporaryDirectory() as downloads, ThreadPoolExecutor(clients) as pool:
        users = list(pool.map(lambda k: Client(url, verbose=False, download_files=f"{downloads}/{k}"), range(clients)))
        results = list(pool.map(user, range(clients), users))
        list(pool.map(Client.close, users))  # in parallel: each waits up to 1 s for its heartbeat thread
    return results


def http_users(url: str, n_points: int, clients: int, stop: float) -> list[tuple[Clicks, list[str]]]:
    """Each user an asyncio task on Gradio's REST API (`POST /gradio_api/call/decode_point`, then its event stream,
    then the PNG), as `curl` or a thin client would: a load generator that costs far less CPU than gradio_client."""
    import asyncio

    import httpx

    endpoint = f"{url}gradio_api/call/decode_point"

    async def click(http: httpx.AsyncClient, index: int) -> None:
        response = await http.post(endpoint, json={"data": [index]})
        response.raise_for_status()
        event, data = None, None
        async with http.stream("GET", f"{endpoint}/{response.json()['event_id']}") as stream:
            async for line in stream.aiter_lines():
                if line.startswith("event:"):
                    event = line.removeprefix("event:").strip()
                elif line.startswith("data:") and event in ("complete", "error"):
                    data = line.removeprefix("data:").strip()
                    break
        if event != "complete":
            raise RuntimeError(f"{event}: {data}")
        image, point = json.loads(data)
        png = await http.get(image["url"])
        png.raise_for_status()
        if point["index"] != index or not png.content.startswith(b"\x89PNG"):
            raise ValueError(f"wrong answer for #{index}: {point}")

    async def user(k: int, http: httpx.AsyncClient) -> tuple[Clicks, list[str]]:
        rng = np.random.default_rng(k)
        latencies, errors = [], []
        while time.monotonic() < stop:
            index = int(rng.integers(n_points))
            start = time.perf_counter()
            try:
                await click(http, index)
            except Exception as error:  # noqa: BLE001 - counted and shown, the load goes on
                errors.append(f"#{index}: {error!r}"[:200])
            else:
                latencies.append((time.monotonic(), 1000 * (time.perf_counter() - start)))
        return latencies, errors

    async def run() -> list[tuple[Clicks, list[str]]]:
        async with httpx.AsyncClient(timeout=60, limits=httpx.Limits(max_connections=4 * clients)) as http:
            return await asyncio.gather(*(user(k, http) for k in range(clients)))

    return asyncio.run(run())


def load_rows(model: str, n_points: int, clients: int, seconds: float, client: str, rss_every: float = 1.0,
              plot: Path | None = None) -> list[tuple[str, str]]:
    """Many users clicking random map points through `/decode_point` at once, against `app.py` on localhost.

    The server's RSS is sampled every `rss_every` seconds. Over a long run (a soak) the rows also compare the
    first and the last sixth of the run (5 of 30 minutes): p95 latency, and how flat RSS stays over the last half.
    """
    import psutil

    process, url = start_app(model)
    server = psutil.Process(process.pid)
    users = gradio_client_users if client == "gradio_client" else http_users
    try:
        users(url, n_points, 1, time.monotonic() + 1)  # first-call costs (imports, caches) out of the start figures
        began = time.monotonic()
        rss = [(began, server.memory_info().rss)]
        cpu = [sum(server.cpu_times()[:2]), sum(psutil.Process().cpu_times()[:2])]  # server, clients: user + system
        done = threading.Event()

        def watch_memory() -> None:
            while not done.wait(rss_every):
                rss.append((time.monotonic(), server.memory_info().rss))

        watcher = threading.Thread(target=watch_memory, daemon=True)
        watcher.start()
        results = users(url, n_points, clients, began + seconds)
        done.set()
        watcher.join()
        rss.append((time.monotonic(), server.memory_info().rss))
        cpu = [sum(server.cpu_times()[:2]) - cpu[0], sum(psutil.Process().cpu_times()[:2]) - cpu[1]]
    finally:
        process.terminate()
        process.wait(timeout=30)
    clicks = sorted((t - began, ms) for user_clicks, _ in results for t, ms in user_clicks)
    latencies = [ms for _, ms in clicks]
    errors = [e for _, user_errors in results for e in user_errors]
    mb = [(t - began, r / 2**20) for t, r in rss]
    rows = [
        ("clients x seconds", f"{clients} x {seconds:g}, {client}"),
        ("clicks answered (per second)", f"{len(latencies)} ({len(latencies) / seconds:.1f}/s)"),
        ("errors", f"{len(errors)}" + (f" (first: {errors[0]})" if errors else "")),
        ("click -> decoded PNG downloaded, per client (ms)", summary(latencies)),
        ("CPU time per click, server / clients (ms)", " / ".join(f"{1000 * t / max(len(latencies), 1):.0f}"
                                                               for t in cpu)),
        ("server RSS at start / peak / end (MB)", f"{mb[0][1]:.0f} / {max(m for _, m in mb):.0f} / {mb[-1][1]:.0f}"),
    ]
    window = seconds / 6
    first = [ms for t, ms in clicks if t < window]
    last = [ms for t, ms in clicks if t >= seconds - window]
    if first and last:
        ratio = np.percentile(last, 95) / np.percentile(first, 95)
        rows.append((f"p95 latency, first / last {window / 60:g} min (ms)",
                     f"{np.percentile(first, 95):.0f} / {np.percentile(last, 95):.0f} (last / first {ratio:.2f}; target <= 1.5)"))
    late = [m for t, m in mb if t >= seconds / 2]
    if len(late) >= 2:
        spread = max(late) / min(late) - 1
        rows.append((f"server RSS over the last {seconds / 120:g} min, min / max (MB)",
                     f"{min(late):.0f} / {max(late):.0f} (spread {100 * spread:.1f} %; target <= 10 %)"))
    if plot is not None:
        plot.parent.mkdir(parents=True, exist_ok=True)
        plot.write_text(soak_svg(mb, clicks, seconds, f"{clients} clients, {seconds / 60:g} min, {client}"))
        rows.append(("plot", str(plot.relative_to(ROOT) if plot.is_relative_to(ROOT) else plot)))
    return rows


def soak_svg(rss: list[tuple[float, float]], clicks: list[tuple[float, float]], seconds: float, title: str) -> str:
    """A two-panel SVG: server RSS (MB) and p95 click latency per minute (ms), against minutes into the run."""
    width, height, left, panel = 640, 360, 60, 130
    minutes = max(seconds / 60, 1e-9)
    per_minute = [[ms for t, ms in clicks if int(t // 60) == m] for m in range(int(np.ceil(minutes)))]
    p95 = [(m + 0.5, float(np.percentile(v, 95))) for m, v in enumerate(per_minute) if v]
    series = [("server RSS (MB)", [(t / 60, m) for t, m in rss], "#3366cc", 30),
              ("p95 latency per minute (ms)", p95, "#cc3333", 30 + panel + 50)]
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="11">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{left}" y="16" font-size="13">{title}</text>']
    for name, points, colour, top in series:
        if not points:
            continue
        values = [v for _, v in points]
        low, high = 0.0, max(values) * 1.1 or 1.0
        x = lambda t: left + (width - left - 20) * t / minutes  # noqa: E731
        y = lambda v: top + panel - panel * (v - low) / (high - low)  # noqa: E731
        parts.append(f'<text x="{left}" y="{top - 4}">{name}</text>')
        parts.append(f'<line x1="{left}" y1="{top + panel}" x2="{width - 20}" y2="{top + panel}" stroke="#999"/>')
        parts.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + panel}" stroke="#999"/>')
        for tick in (low, (low + high) / 2, high):
            parts.append(f'<text x="{left - 6}" y="{y(tick) + 4:.1f}" text-anchor="end">{tick:.0f}</text>')
        path = " ".join(f"{x(t):.1f},{y(v):.1f}" for t, v in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="1.5"/>')
        for m in range(0, int(minutes) + 1, max(1, int(minutes) // 6)):
            parts.append(f'<text x="{x(m):.1f}" y="{top + panel + 14}" text-anchor="middle">{m}</text>')
    parts.append(f'<text x="{(width + left) / 2}" y="{height - 4}" text-anchor="middle">minutes into the run</text>')
    return "\n".join(parts + ["</svg>"]) + "\n"


def summary(values: float | list[float]) -> str:
    values = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"p50 {np.percentile(values, 50):.1f}, p95 {np.percentile(values, 95):.1f} (n={len(values)})"


def print_table(heading: str, rows: list[tuple[str, str]]) -> None:
    print(f"\n{heading}\n\n| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


def main(argv: list[str] | None = None) -> int:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    demo_model = ROOT / "assets" / "demo-model"
    parser.add_argument("--model", default=str(demo_model))
    parser.add_argument("--clicks", type=int, default=200)
    parser.add_argument("--browser-clicks", type=int, default=20)
    parser.add_argument("--map-points", type=int, default=100_000)
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--start-only", action="store_true", help="only the cold-start rows (app start against bare imports)")
    parser.add_argument("--starts", type=int, default=3, help="cold starts (and bare imports) to time")
    parser.add_argument("--load", action="store_true", help="only the many-users rows (see --clients, --seconds)")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--client", choices=["gradio_client", "http"], default="gradio_client",
                        help="--load clients: gradio_client (threads), or plain HTTP on Gradio's REST API (asyncio)")
    parser.add_argument("--soak", action="store_true",
                        help="--load for 30 minutes (unless --seconds says otherwise), RSS every 30 s, and a plot")
    parser.add_argument("--plot", type=Path, default=ROOT / "benchmarks" / "results" / "app_soak.svg",
                        help="--soak: where to write the RSS / latency plot")
    args = parser.parse_args(argv)

    import torch

    from vaegan.example_eyes import draw_example_eye
    from vaegan.hub import load_model
    from vaegan.ui import Explorer, points_payload

    model, latent_map = load_model(args.model)
    if latent_map is None:
        raise SystemExit(f"{args.model} has no latent map")
    if args.soak:
        args.load = True
        args.seconds = args.seconds if "--seconds" in (argv or sys.argv) else 1800.0
    if args.load:
        rows = load_rows(args.model, len(latent_map), args.clients, args.seconds, args.client,
                         rss_every=30.0 if args.soak else 1.0, plot=args.plot if args.soak else None)
        print_table(f"model: {args.model} (map of {len(latent_map)} eyes); `app.py` on localhost, clients via "
                    f"{args.client} on the same machine; {os.cpu_count()} CPU cores", rows)
        return 0

    rows: list[tuple[str, str]] = []
    starts, bare = cold_start(args.model, args.starts)
    rows.append(("cold start, `python app.py` to 'Running on' (s)", summary(starts)))
    rows.append(("bare `python -c \"import torch, gradio\"`, same runs interleaved (s)", summary(bare)))
    ratio = np.median(starts) / np.median(bare)
    rows.append(("cold start / bare imports, medians (issue 12 target: at most 1.3)", f"{ratio:.2f}"))
    if args.start_only:
        print_table(f"model: {args.model}; {os.cpu_count()} CPU cores", rows)
        return 0

    torch.set_num_threads(1)  # as app.py does
    with tempfile.TemporaryDirectory() as work:
        upload = Path(work) / "eye.png"
        draw_example_eye(True).resize((64, 64)).save(upload)
        explorer = Explorer(model, latent_map, work_dir=work)
        for name, values in server_times(explorer, latent_map, args.clicks, upload).items():
            rows.append((f"server time per call, {name} (ms)", summary(values)))

    big_map = synthetic_map(latent_map, args.map_points)
    payload = json.dumps(points_payload(big_map))
    naive = json.dumps({"x": big_map.xy[:, 0].tolist(), "y": big_map.xy[:, 1].tolist(), "labels": big_map.labels.tolist()})
    rows.append((f"point payload, {len(big_map)} points (MB)", f"{len(payload) / 1e6:.2f} (plain JSON lists: {len(naive) / 1e6:.2f})"))

    if not args.no_browser:
        for name, values in browser_rows(model, latent_map, big_map, args.browser_clicks).items():
            rows.append((name, summary(values)))

    print_table(f"model: {args.model} (latent {model.config.latent_dim}, map of {len(latent_map)} eyes); "
                f"{os.cpu_count()} CPU cores, torch {torch.__version__}, {torch.get_num_threads()} threads", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
