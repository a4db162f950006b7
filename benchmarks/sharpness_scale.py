"""What a sharpness ratio means in pixels of blur: real held-out eyes, Gaussian-blurred, scored as reconstructions.

    python benchmarks/sharpness_scale.py --data-dir ../shared/data [--model assets/demo-model] [--sigmas 0.3,0.4,0.5,0.7,1,1.5]

For each source (top-level folder, as `evaluate` splits them) and for all eyes pooled, it prints the
sharpness ratio and SSIM of the real val + test eyes blurred by a Gaussian of each sigma (in pixels of the
model's image size). With --model it also gives the model's reconstruction sharpness and SSIM, and the blur
whose sharpness ratio equals it (interpolated in log sigma): "as detailed as the real eyes blurred by s px".
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import numpy as np
import torch
from torchvision.transforms.functional import gaussian_blur

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vaegan.data import load_dataset, to_float  # noqa: E402
from vaegan.evaluate import source_index  # noqa: E402
from vaegan.hub import load_model  # noqa: E402
from vaegan.metrics import reconstruction_scores, sharpness_ratio  # noqa: E402


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of float images, the kernel wide enough (6 sigma, odd) to hold the whole bell."""
    size = 2 * math.ceil(3 * sigma) + 1
    return gaussian_blur(x, [size, size], [sigma, sigma])


def ratio_and_ssim(x: torch.Tensor, y: torch.Tensor, chunk: int = 1024) -> tuple[float, float]:
    """Sharpness ratio (mean Laplacian variance of y over x's, as evaluate pools it) and mean SSIM of y against x."""
    ssim = torch.cat([reconstruction_scores(a, b)["ssim"] for a, b in zip(x.split(chunk), y.split(chunk))])
    return sharpness_ratio(y, x), ssim.mean().item()


def equivalent_sigma(ratio: float, sigmas: list[float], ratios: list[float]) -> str:
    """The blur with this sharpness ratio, interpolated in log sigma; '<' or '>' the measured range where outside it."""
    assert all(a > b for a, b in zip(ratios, ratios[1:])), "the ratios must fall as the blur widens"
    if ratio >= ratios[0]:
        return f"< {sigmas[0]:g}"
    if ratio <= ratios[-1]:
        return f"> {sigmas[-1]:g}"
    # the ratios fall as sigma grows: interpolate log sigma against log ratio
    sigma = np.exp(np.interp(-np.log(ratio), -np.log(ratios), np.log(sigmas)))
    return f"{sigma:.2f}"


@torch.no_grad()
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--model", default=None, help="model dir or Hub repo id whose reconstructions to place on the scale")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--image-size", type=int, default=64, help="without --model (default %(default)s)")
    parser.add_argument("--sigmas", default="0.3,0.4,0.5,0.7,1,1.5")
    args = parser.parse_args(argv)
    sigmas = sorted(float(s) for s in args.sigmas.split(","))
    model = load_model(args.model)[0] if args.model else None
    size, channels = (model.config.image_size, model.config.channels) if model else (args.image_size, 1)
    held_out = load_dataset(args.data_dir, image_size=size, channels=channels, cache_dir=args.cache_dir).subset("val", "test")
    groups = source_index(held_out.paths) | {"all": torch.arange(len(held_out))}
    real = to_float(held_out.images)
    if model:  # each eye reconstructed once, from mu, as evaluate does
        reconstructions = torch.cat([model.decode(model.encode(chunk)[0]).float().clamp(-1, 1) for chunk in real.split(256)])
    header = "| eyes | " + " | ".join(f"blur {s:g} px" for s in sigmas) + (" | model | as blurred by (px) |" if model else " |")
    print(f"sharpness ratio / SSIM of the real val + test eyes ({len(held_out)}) at {size} px\n")
    print(header + "\n|---|" + "---:|" * (len(sigmas) + (2 if model else 0)))
    for name, index in groups.items():
        x = real[index]
        scores = [ratio_and_ssim(x, blur(x, s)) for s in sigmas]
        row = f"| {name} ({len(x)}) | " + " | ".join(f"{r:.3f} / {q:.3f}" for r, q in scores)
        if model:
            ratio, ssim = ratio_and_ssim(x, reconstructions[index])
            row += f" | {ratio:.3f} / {ssim:.3f} | {equivalent_sigma(ratio, sigmas, [r for r, _ in scores])}"
        print(row + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
