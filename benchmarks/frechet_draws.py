"""How much the prior samples' Frechet distance moves between draws of z, and ratios that allow for it.

    python benchmarks/frechet_draws.py --data-dir ../shared/data --model VAE_DIR --model VAEGAN_DIR \
        [--draws 5] [--num-samples N] [--cache-dir DIR]

The model card's `frechet_distance` scores one draw of prior samples (as many as the held-out eyes,
z from seed 0) against the held-out eyes (val + test) on the eye-feature CNN. This scores draws 0 to
DRAWS - 1 the same way (draw 0 is the card's), prints each model's distances with their mean and
standard deviation, and each later model's mean over the first model's mean: put the plain VAE first
to read the "at most 0.5x the VAE's" target off the means rather than off one draw.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import git_commit, machine  # noqa: E402
from vaegan.data import load_dataset, to_float  # noqa: E402
from vaegan.evaluate import prior_samples, select_split  # noqa: E402
from vaegan.eye_features import DEFAULT_FEATURES, load_feature_network  # noqa: E402
from vaegan.hub import load_model  # noqa: E402
from vaegan.metrics import feature_distances  # noqa: E402


@torch.no_grad()
def sample_distances(model: torch.nn.Module, features: torch.nn.Module, real: torch.Tensor, num_samples: int, draws: int) -> list[float]:
    """The Frechet distance of `num_samples` prior samples to the real eyes' features, for z drawn from seeds 0 .. draws - 1."""
    fakes = (torch.cat([features(samples) for samples in prior_samples(model, num_samples, seed)]) for seed in range(draws))
    return [feature_distances(real, fake, seed=0)["frechet_distance"] for fake in fakes]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="model dir or Hub repo id; repeat it (the first is the reference)")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--draws", type=int, default=5)
    parser.add_argument("--num-samples", type=int, default=None, help="prior samples per draw (default: as many as the held-out eyes, as the card)")
    parser.add_argument("--features", default=str(DEFAULT_FEATURES))
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args(argv)
    if args.draws < 2:
        parser.error(f"--draws must be at least 2 to give a spread, got {args.draws}")
    if args.num_samples is not None and args.num_samples < 2:
        parser.error(f"--num-samples must be at least 2, got {args.num_samples}")
    features = load_feature_network(args.features).eval()
    models = [load_model(name)[0].eval() for name in args.model]
    config = models[0].config
    data = load_dataset(args.data_dir, image_size=config.image_size, channels=config.channels, cache_dir=args.cache_dir)
    held_out = select_split(data, "val+test")
    with torch.no_grad():
        real = torch.cat([features(to_float(batch)) for batch in held_out.images.split(256)])
    num_samples = args.num_samples or len(held_out)
    print(f"at {git_commit()} on {machine()}: {args.draws} draws of {num_samples} prior samples against {len(held_out)} held-out eyes")
    means = []
    for name, model in zip(args.model, models):
        distances = sample_distances(model, features, real, num_samples, args.draws)
        means.append(statistics.mean(distances))
        ratio = f", {means[-1] / means[0]:.3f}x the first model's mean" if len(means) > 1 else ""
        print(f"{name}: {' '.join(f'{d:.3f}' for d in distances)}; mean {means[-1]:.3f}, sd {statistics.stdev(distances):.3f}{ratio}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
