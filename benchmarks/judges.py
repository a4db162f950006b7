"""Do the models' Frechet distances hold under other judges? Three more feature networks score the same models.

    python benchmarks/judges.py --data-dir ../shared/data --model VAE_DIR --model VAEGAN_DIR ... [--draws 5] [--cache-dir DIR]

The card's distances use the eye-state CNN (assets/eye_features.safetensors), trained on the open / closed labels.
The state term of training asks the decoder for evidence of the eye's state, and BENCHMARKS.md (Round 9) found a change
too small to see that moved that judge further than any recipe. The checker scores with a network of its own. So this
script trains, on the model's train split, the same architecture twice more and scores each model with all four:

- `state`: the card's eye-state CNN (the file);
- `state-1`: another eye-state CNN, seed 1 and 1.5x as wide;
- `upright`: one that never sees the open / closed labels. It tells each training eye from the same eye turned upside
  down (the rotation task of Gidaris et al. 2018, two of its four angles), which takes brows, lids and lashes, not state;
- `random`: the same CNN with its random starting weights, untrained: low-level statistics only.

For each model and judge: prior samples (the mean over draws 0 .. DRAWS - 1 of z, as `frechet_draws.py`), the
reconstructions of mu, and the Gaussian-mixture samples the page shows, each against the held-out eyes (val + test).
Each distance is also given over the first model's: put the plain VAE first.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import git_commit, machine  # noqa: E402
from benchmarks.frechet_draws import sample_distances  # noqa: E402
from vaegan.data import EyeData, load_dataset, to_float  # noqa: E402
from vaegan.evaluate import select_split  # noqa: E402
from vaegan.eye_features import DEFAULT_FEATURES, EyeFeatureNet, FeatureConfig, feature_accuracy, fit_feature_network, load_feature_network  # noqa: E402
from vaegan.hub import load_model  # noqa: E402
from vaegan.metrics import feature_distances  # noqa: E402


def upright_task(data: EyeData, *splits: str) -> EyeData:
    """The eyes of `splits` (default: train) twice, upright (label 1) and turned 180 degrees (label 0), all as a train split:
    orientation, not eye state, to learn."""
    eyes = data.subset(*(splits or ("train",)))
    images = torch.cat([eyes.images, eyes.images.flip(2, 3)])
    labels = torch.cat([torch.ones(len(eyes), dtype=torch.long), torch.zeros(len(eyes), dtype=torch.long)])
    return EyeData(images, labels, torch.zeros(len(images), dtype=eyes.splits.dtype), eyes.paths * 2)


JUDGES = ("state", "state-1", "upright", "random")


def random_judge(config: FeatureConfig, seed: int) -> EyeFeatureNet:
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return EyeFeatureNet(config).eval()


def judges(data: EyeData, features_file: str, epochs: int, names: list[str], seed: int = 0) -> dict[str, EyeFeatureNet]:
    """The feature networks named, each in eval mode; `seed` moves the seeds of the three that this script makes."""
    config = FeatureConfig(image_size=data.images.shape[-1], channels=data.images.shape[1])
    wider = [w * 3 // 2 for w in config.widths]
    make = {
        "state": lambda: load_feature_network(features_file),
        "state-1": lambda: fit_feature_network(data, epochs=epochs, seed=seed + 1, widths=wider),
        "upright": lambda: fit_feature_network(upright_task(data), epochs=epochs, seed=seed + 2),
        "random": lambda: random_judge(config, seed),
    }
    return {name: make[name]() for name in names}


@torch.no_grad()
def features_of(net: EyeFeatureNet, images: torch.Tensor) -> torch.Tensor:
    return torch.cat([net(chunk) for chunk in images.split(256)])


@torch.no_grad()
def model_images(model: torch.nn.Module, latent_map, real: torch.Tensor, num: int) -> dict[str, torch.Tensor]:
    """Reconstructions of mu and the page's mixture samples (seed 0), clamped to [-1, 1]."""
    recon = torch.cat([model.decode(model.encode(chunk)[0]).float().clamp(-1, 1) for chunk in real.split(256)])
    out = {"recon": recon}
    if latent_map is not None and latent_map.has_mixture:
        z = torch.as_tensor(latent_map.sample_mixture(num, torch.Generator().manual_seed(0)))
        out["mixture"] = torch.cat([model.decode(chunk).float().clamp(-1, 1) for chunk in z.split(256)])
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="model dir or Hub repo id; repeat it (the first is the reference)")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--draws", type=int, default=5, help="draws of z for the prior samples (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=8, help="training epochs of each new judge (default: %(default)s, as fit-features)")
    parser.add_argument("--features", default=str(DEFAULT_FEATURES), help="the card's eye-state CNN (default: %(default)s)")
    parser.add_argument("--judges", default=",".join(JUDGES), help="comma-separated, of %(default)s (default: all)")
    parser.add_argument("--seed", type=int, default=0, help="moves the seeds of the judges made here (state-1: SEED + 1, upright: SEED + 2, random: SEED)")
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args(argv)
    if args.draws < 1:
        parser.error(f"--draws must be at least 1, got {args.draws}")
    names = args.judges.split(",")
    if not names or set(names) - set(JUDGES):
        parser.error(f"--judges must name some of {', '.join(JUDGES)}, got {args.judges!r}")
    loaded = [load_model(name) for name in args.model]
    config = loaded[0][0].config
    data = load_dataset(args.data_dir, image_size=config.image_size, channels=config.channels, cache_dir=args.cache_dir)
    held_out = select_split(data, "val+test")
    real = to_float(held_out.images)
    started = time.perf_counter()
    nets = judges(data, args.features, args.epochs, names, args.seed)
    print(f"at {git_commit()} on {machine()}: {len(held_out)} held-out eyes, {args.draws} draws of prior samples; "
          f"judges trained in {time.perf_counter() - started:.0f} s")
    for name, net in nets.items():  # how well each trained judge learned its own task, on the held-out eyes
        if name == "upright":
            print(f"judge upright: held-out accuracy on its own task {feature_accuracy(net, upright_task(data, 'val', 'test')):.3f}")
        elif name != "random":
            print(f"judge {name}: held-out open / closed accuracy {feature_accuracy(net, held_out):.3f}")
    outputs = [model_images(model, latent_map, real, len(held_out)) for model, latent_map in loaded]
    print("| judge | model | prior samples (mean of draws) | x first | reconstructions | x first | mixture samples | x first |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for judge, net in nets.items():
        reference = features_of(net, real)
        first = {}
        for name, (model, _), images in zip(args.model, loaded, outputs):
            prior = statistics.mean(sample_distances(model, net, reference, len(held_out), args.draws))
            scores = {"prior": prior} | {kind: feature_distances(reference, features_of(net, x))["frechet_distance"] for kind, x in images.items()}
            first = first or scores
            cells = [f"{scores[k]:.4g} | {scores[k] / first[k]:.3f}" if k in scores and k in first else "- | -" for k in ("prior", "recon", "mixture")]
            print(f"| {judge} | {name} | {' | '.join(cells)} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
