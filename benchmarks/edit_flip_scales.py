"""How far the page's slider must move an eye before the eye-feature CNN reads the other state.

    python benchmarks/edit_flip_scales.py --model assets/demo-model --data-dir ../shared/data [--scales 1,1.5,2,3]

`evaluate.edit_flip` moves each held-out eye (val + test) one class-mean difference along the map's
closed -> open direction; this moves it 1, 1.5, 2 and 3 differences (the slider reaches 2), along the
whole direction, along latent unit 0 alone and along the other units alone, and prints the share flipped.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from vaegan.data import load_dataset, to_float  # noqa: E402
from vaegan.eye_features import load_feature_network, predict_labels  # noqa: E402
from vaegan.hub import load_model  # noqa: E402
from vaegan.networks import toward_other_state  # noqa: E402


@torch.no_grad()
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--scales", default="1,1.5,2,3")
    args = parser.parse_args(argv)
    model, latent_map = load_model(args.model)
    if latent_map is None:
        raise SystemExit(f"{args.model} has no latent map, so no slider direction")
    config = model.config
    data = load_dataset(args.data_dir, image_size=config.image_size, channels=config.channels, cache_dir=args.cache_dir)
    held_out = data.subset("val", "test")
    features = load_feature_network()
    x = to_float(held_out.images)
    mu = torch.cat([model.encode(batch)[0] for batch in x.split(256)])
    direction = torch.as_tensor(latent_map.open_direction)
    unit_0 = torch.zeros_like(direction)
    unit_0[0] = direction[0]
    parts = {"whole direction": direction, "unit 0 alone": unit_0, "other units alone": direction - unit_0}
    scales = [float(s) for s in args.scales.split(",")]
    print(f"{len(held_out)} held-out eyes (val + test); share read as the other state after the move\n")
    print("| moved along | " + " | ".join(f"{s:g} x" for s in scales) + " |")
    print("|---|" + "---:|" * len(scales))
    for name, vector in parts.items():
        flips = []
        for scale in scales:
            moved = toward_other_state(mu, held_out.labels, scale * vector)  # open -> closed, closed -> open
            edited = torch.cat([model.decode(z).clamp(-1, 1) for z in moved.split(256)])
            flips.append((predict_labels(features, edited).cpu() == 1 - held_out.labels).float().mean().item())
        print(f"| {name} | " + " | ".join(f"{f:.3f}" for f in flips) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
