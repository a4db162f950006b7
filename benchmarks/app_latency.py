"""How fast the explorer page is: cold start, server time per click, browser click -> image, 100k-point map draw.

    python benchmarks/app_latency.py [--model DIR] [--clicks 200] [--browser-clicks 20] [--map-points 100000]

Needs Debian's chromium for the browser rows (`apt-get install -y chromium`); prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
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


def cold_start(model: str, runs: int = 3) -> list[float]:
    """Seconds from `python app.py` to its 'Running on' line."""
    times = []
    for _ in range(runs):
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
    return times


def server_times(explorer, latent_map, clicks: int, upload: Path) -> dict[str, list[float]]:
    """Milliseconds per callback call, measured in-process (what the server spends per click, before encoding PNGs)."""
    import gradio as gr

    rng = np.random.default_rng(0)
    state = explorer.initial_state()
    times: dict[str, list[float]] = {"point click": [], "empty-space click": [], "slider": [], "upload (64 px PNG)": []}
    lo, hi = latent_map.xy.min(0), latent_map.xy.max(0)
    for i in range(clicks):
        start = time.perf_counter()
        state = explorer.on_point(state, gr.EventData(None, {"index": int(rng.integers(len(latent_map)))}))[0]
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
    from vaegan.ui import build_demo

    demo = build_demo(model, latent_map)
    demo.queue(default_concurrency_limit=max(2, min(8, os.cpu_count() or 1)))  # as app.py does
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
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


def summary(values: float | list[float]) -> str:
    values = np.atleast_1d(np.asarray(values, dtype=np.float64))
    if len(values) == 1:
        return f"{values[0]:.1f}"
    return f"p50 {np.percentile(values, 50):.1f}, p95 {np.percentile(values, 95):.1f} (n={len(values)})"


def main(argv: list[str] | None = None) -> int:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    demo_model = ROOT / "assets" / "demo-model"
    parser.add_argument("--model", default=str(demo_model) if demo_model.exists() else "/tmp/run2/model")
    parser.add_argument("--clicks", type=int, default=200)
    parser.add_argument("--browser-clicks", type=int, default=20)
    parser.add_argument("--map-points", type=int, default=100_000)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args(argv)

    import tempfile

    import torch

    from vaegan.hub import load_model
    from vaegan.ui import Explorer, draw_example_eye, points_payload

    rows: list[tuple[str, str]] = []
    starts = cold_start(args.model)
    rows.append(("cold start, `python app.py` to 'Running on' (s)", summary(starts)))

    torch.set_num_threads(1)  # as app.py does
    model, latent_map = load_model(args.model)
    if latent_map is None:
        raise SystemExit(f"{args.model} has no latent map")
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

    print(f"\nmodel: {args.model} (latent {model.config.latent_dim}, map of {len(latent_map)} eyes); "
          f"{os.cpu_count()} CPU cores, torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    print("| measure | value |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
