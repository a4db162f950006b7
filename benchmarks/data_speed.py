"""Cache build and cached start for a Kaggle-sized folder of generated eye crops.

    python benchmarks/data_speed.py [--images 175000] [--folder /tmp/vaegan-175k] [--write]

Generates the folder once (train / val / test x open / closed, small grayscale JPEGs of
varied sizes like the Kaggle crops), then times `load_dataset` cold (decode in parallel
into the cache) and warm (cached start), in fresh processes, with their peak memory.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from benchmarks.common import git_commit, machine, write_section  # noqa: E402

SPLITS = {"train": 0.8, "val": 0.16, "test": 0.04}
PROBE = """
import json, resource, sys, time
start = time.perf_counter()
from vaegan.data import load_dataset
data = load_dataset(sys.argv[1], cache_dir=sys.argv[2])
print(json.dumps({"seconds": time.perf_counter() - start, "images": len(data),
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "children_peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
"""


def generate(folder: Path, count: int, seed: int = 0) -> None:
    """Write `count` random eye-like JPEGs (24-100 px) unless the folder already has them."""
    marker = folder / f".complete-{count}"
    if marker.exists():
        return
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (100, 100), dtype=np.uint8)
    written = 0
    for split, share in SPLITS.items():
        for label, class_share in (("open", 0.76), ("closed", 0.24)):
            target = folder / split / label
            target.mkdir(parents=True, exist_ok=True)
            for i in range(int(count * share * class_share)):
                size = int(rng.integers(24, 100))
                offset = int(rng.integers(0, 100 - size + 1))
                Image.fromarray(base[offset : offset + size, offset : offset + size]).save(target / f"{i:06d}.jpg", quality=90)
                written += 1
    marker.write_text(str(written))


def probe(folder: Path, cache: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", PROBE, str(folder), str(cache)], env=env, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=175_000)
    parser.add_argument("--folder", default="/tmp/vaegan-175k")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)
    folder = Path(args.folder)
    started = time.perf_counter()
    generate(folder, args.images)
    print(f"folder ready in {time.perf_counter() - started:.0f} s", flush=True)
    with tempfile.TemporaryDirectory() as cache:
        cold = probe(folder, Path(cache))
        warm = probe(folder, Path(cache))
    table = "\n".join([
        f"Command: `python benchmarks/data_speed.py --images {args.images}` (commit {git_commit()}, {time.strftime('%Y-%m-%d')})",
        f"Machine: {machine()}.",
        "",
        "| run | images | seconds | peak memory, main process (MB) | peak memory, one decoding worker (MB) |",
        "|---|---|---|---|---|",
        f"| cold: discover + decode in parallel + write cache | {cold['images']} | {cold['seconds']:.1f} | {cold['peak_rss_mb']:.0f} | {cold['children_peak_rss_mb']:.0f} |",
        f"| warm: cached start | {warm['images']} | {warm['seconds']:.1f} | {warm['peak_rss_mb']:.0f} | - |",
    ])
    print(table)
    if args.write:
        write_section("Data preparation", table)


if __name__ == "__main__":
    main()
