"""How fast a fresh discriminator learns to tell a trained model's prior samples from real eyes.

    python benchmarks/discriminator_speed.py --model assets/demo-model --data-dir ../shared/data \
        [--norm spectral] [--steps 1000] [--lr 2e-4] [--cache-dir DIR]

The model is frozen. A new discriminator (vaegan.networks.Discriminator of the kind `--norm` builds) is
trained as the trainer trains it (Adam, beta1 0.5, batches of 64 training eyes, flipped at random, against
64 fresh prior samples, binary cross-entropy) and every 200 steps it is scored on the held-out eyes
(val + test, up to 512) against 512 new prior samples: the share of both it gets right. A critic that
needs thousands of steps to see what a person sees at once gives the decoder little to learn from.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import git_commit, machine  # noqa: E402
from vaegan import losses  # noqa: E402
from vaegan.data import load_dataset, to_float  # noqa: E402
from vaegan.hub import load_model  # noqa: E402
from vaegan.networks import DISCRIMINATOR_NORMS, Discriminator  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--norm", default="spectral", choices=DISCRIMINATOR_NORMS)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--lr", type=float, default=2e-4)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)
    model, _ = load_model(args.model)
    model.requires_grad_(False)
    config = model.config
    data = load_dataset(args.data_dir, image_size=config.image_size, channels=config.channels, cache_dir=args.cache_dir)
    train, held_out = to_float(data.subset("train").images), to_float(data.subset("val", "test").images[:512])
    discriminator = Discriminator(config, norm=args.norm)
    optimizer = torch.optim.Adam(discriminator.parameters(), lr=args.lr, betas=(0.5, 0.999))

    def samples(n: int) -> torch.Tensor:
        with torch.no_grad():
            return model.decode(torch.randn(n, config.latent_dim)).clamp(-1, 1)

    print(f"{args.model} at {git_commit()} on {machine()}: a fresh '{args.norm}' discriminator, lr {args.lr:g}")
    start = time.perf_counter()
    for step in range(1, args.steps + 1):
        real = train[torch.randint(0, len(train), (64,))]
        real = torch.where(torch.rand(64, 1, 1, 1) < 0.5, real, real.flip(3))
        loss = losses.discriminator_loss(discriminator(real)[0], discriminator(samples(64))[0])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % 200 == 0 or step == args.steps:
            discriminator.eval()
            with torch.no_grad():
                right = ((discriminator(held_out)[0] > 0).float().mean() + (discriminator(samples(512))[0] < 0).float().mean()) / 2
            discriminator.train()
            print(f"step {step}: held-out accuracy {right.item():.3f} (loss {loss.item():.3f}, {time.perf_counter() - start:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
