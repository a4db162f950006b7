"""The whole `python train.py` run on a Kaggle-sized folder, timed from launch to exit, data prep included.

    python benchmarks/train_e2e.py [--images 175000] [--epochs 50] [--write] [-- extra train.py flags]

Generates the folder once (as benchmarks/data_speed.py does: 175,000 images give the
140,000-image training split of the Kaggle dataset), then runs train.py in a fresh process
with an empty cache and splits its wall time into phases from the times its log lines
arrive: start-up + data prep (until the cache is built), the training loop (the epochs'
own `seconds` in metrics.jsonl), the per-epoch extras (validation, sample grids,
checkpoint) and the export (latent map, evaluation, model card). The issue's target:
50 epochs of the 140k split in under 10 minutes on one GPU. Extra flags go to train.py:
`-- --max-steps 20 --epochs 1` times the fixed costs alone on a machine too slow to train.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import git_commit, machine, write_section  # noqa: E402
from benchmarks.data_speed import generate  # noqa: E402


def run_training(command: list[str]) -> tuple[int, dict[str, float], float]:
    """Run train.py; returns its exit code, the first time each phase's log line appeared, and the wall time."""
    marks: dict[str, float] = {}
    started = time.perf_counter()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in process.stdout:  # text mode splits tqdm's \r updates into lines too
        now = time.perf_counter() - started
        if "cached " in line or ("loaded " in line and "from cache" in line):
            marks.setdefault("data", now)
        elif " epoch " in line and " step " in line and "images_per_second" in line:
            marks["last_epoch"] = now
        elif "model written to" in line:
            marks["exported"] = now
        if "ERROR" in line or "Traceback" in line:
            print(line, end="", flush=True)
    code = process.wait()
    return code, marks, time.perf_counter() - started


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=175_000, help="generated images (80%% go to the train split)")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--folder", default="/tmp/vaegan-175k")
    parser.add_argument("--write", action="store_true", help="record the table in BENCHMARKS.md")
    parser.add_argument("train_args", nargs="*", help="extra train.py flags, after --")
    args = parser.parse_args(argv)
    folder = Path(args.folder)
    generate(folder, args.images)
    with tempfile.TemporaryDirectory() as work:
        out_dir = Path(work) / "run"
        command = [sys.executable, "train.py", "--data-dir", str(folder), "--epochs", str(args.epochs),
                   "--cache-dir", str(Path(work) / "cache"), "--out-dir", str(out_dir), *args.train_args]
        print("running:", " ".join(command[1:]), flush=True)
        code, marks, wall = run_training(command)
        if code != 0:
            raise SystemExit(f"train.py exited with {code}")
        records = [json.loads(line) for line in (out_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
        config = json.loads((out_dir / "train_config.json").read_text())["train"]
    loop = sum(record["seconds"] for record in records)
    data = marks.get("data", 0.0)
    epochs_end = marks.get("last_epoch", data)
    steps = records[-1]["step"]
    images = steps * config["batch_size"]
    shown_args = " ".join(["--epochs", str(args.epochs)] + (["--images", str(args.images)] if args.images != 175_000 else []))
    extra = f" -- {' '.join(args.train_args)}" if args.train_args else ""
    rows = [
        ("whole run, launch to exit", wall),
        ("start-up + data prep (discover, decode in parallel, cache)", data),
        (f"training loop ({len(records)} epoch{'s' * (len(records) != 1)}, {steps} steps, {images} images)", loop),
        ("per-epoch extras (validation, sample grids, checkpoint) and start of training", epochs_end - data - loop),
        ("export (latent map, evaluation, model card) and exit", wall - epochs_end),
    ]
    lines = [
        f"Command: `python benchmarks/train_e2e.py {shown_args}{extra}` (commit {git_commit()}, {time.strftime('%Y-%m-%d')})",
        f"Machine: {machine()}; batch {config['batch_size']}, compile {config['compile']}, "
        f"{args.images} generated images ({int(args.images * 0.8)} in the train split).",
        "",
        "| phase | seconds |",
        "|---|---:|",
        *[f"| {name} | {seconds:.1f} |" for name, seconds in rows],
        "",
        f"Training loop: {statistics.median(r['images_per_second'] for r in records):.0f} img/s (median over epochs).",
    ]
    if args.epochs == 50 and not args.train_args and args.images == 175_000:
        lines.append(f"Target, 50 epochs of the 140k split in under 10 minutes: {'met' if wall < 600 else 'not met'} ({wall / 60:.1f} min).")
    table = "\n".join(lines)
    print(table)
    if args.write:
        write_section(f"Whole training run ({'GPU' if torch.cuda.is_available() else 'CPU'})", table)


if __name__ == "__main__":
    main()
