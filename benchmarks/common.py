"""Helpers shared by the benchmark scripts: machine description and BENCHMARKS.md sections."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from pathlib import Path

import torch

BENCHMARKS_MD = Path(__file__).resolve().parents[1] / "BENCHMARKS.md"


def machine() -> str:
    """One line naming the machine the numbers come from."""
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()} ({torch.cuda.device_count()} GPU), torch {torch.__version__}"
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or "unknown CPU"
    return f"{cpu}, {os.cpu_count()} cores, no GPU, torch {torch.__version__}"


def git_commit() -> str:
    """Short hash of HEAD, or 'unknown'."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_section(title: str, body: str) -> None:
    """Replace (or append) the '## title' section of BENCHMARKS.md, keeping the others."""
    text = BENCHMARKS_MD.read_text() if BENCHMARKS_MD.exists() else "# Benchmarks\n\nEvery figure here was measured by the script named beside it.\n"
    section = f"## {title}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    text = pattern.sub(section + "\n", text) if pattern.search(text) else text.rstrip() + "\n\n" + section
    BENCHMARKS_MD.write_text(text)
