"""Training throughput of the default 64x64 VAE-GAN: this project's loop vs a straightforward eager fp32 loop.

    python benchmarks/train_speed.py [--batch-sizes 64,128,256] [--write]

For each batch size: warm-up steps, then the median images/s of several timed windows,
the achieved FLOP/s (FLOPs per image counted with torch's FlopCounterMode) over the
device's measured peak (a large bf16 matmul), and the peak memory.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import git_commit, machine, write_section  # noqa: E402
from vaegan import losses  # noqa: E402
from vaegan.config import ModelConfig, TrainConfig  # noqa: E402
from vaegan.data import EyeData, to_float  # noqa: E402
from vaegan.networks import VAEGAN, Discriminator  # noqa: E402
from vaegan.trainer import Trainer  # noqa: E402


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_flops(device: torch.device) -> float:
    """Measured FLOP/s of a large bf16 matmul: the practical peak of this device."""
    n = 8192 if device.type == "cuda" else 2048
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    synchronize(device)
    repeats = 20 if device.type == "cuda" else 5
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return 2 * n**3 * repeats / (time.perf_counter() - start)


class ReferenceLoop:
    """The straightforward loop: eager fp32, separate forward passes, a host sync (.item()) every step."""

    def __init__(self, config: ModelConfig, device: torch.device, images: torch.Tensor, batch_size: int):
        self.model = VAEGAN(config).to(device)
        self.disc = Discriminator(config).to(device)
        self.opt_model = torch.optim.Adam(self.model.parameters(), 2e-4, betas=(0.5, 0.999))
        self.opt_disc = torch.optim.Adam(self.disc.parameters(), 2e-4, betas=(0.5, 0.999))
        self.images, self.batch_size, self.device = images, batch_size, device
        self.latent_dim = config.latent_dim

    def step(self) -> dict[str, float]:
        index = torch.randint(0, len(self.images), (self.batch_size,))
        x = to_float(self.images[index]).to(self.device)
        mu, logvar = self.model.encode(x)
        x_rec = self.model.decode(mu + torch.randn_like(mu) * (0.5 * logvar).exp())
        x_prior = self.model.decode(torch.randn(len(x), self.latent_dim, device=self.device))
        # 1. discriminator on detached fakes
        logit_real, _, features_real = self.disc(x)
        logit_rec, _, _ = self.disc(x_rec.detach())
        logit_prior, _, _ = self.disc(x_prior.detach())
        loss_disc = losses.discriminator_loss(logit_real, torch.cat([logit_rec, logit_prior]))
        self.opt_disc.zero_grad()
        loss_disc.backward()
        self.opt_disc.step()
        # 2. encoder + decoder against the updated discriminator
        _, _, features_rec = self.disc(x_rec)
        logit_prior, _, _ = self.disc(x_prior)
        loss = (
            losses.pixel_reconstruction(x_rec, x)
            + 0.05 * losses.kl_divergence(mu, logvar)
            + losses.feature_reconstruction(features_rec, features_real) * x[0].numel()
            + losses.generator_loss(logit_prior)
        )
        self.opt_model.zero_grad()
        loss.backward()
        self.opt_model.step()
        return {"loss": loss.item(), "disc": loss_disc.item()}


def measure(step, batch_size: int, device: torch.device, warmup: int, steps: int, windows: int) -> float:
    """Median images/s over `windows` timed windows of `steps` steps."""
    for _ in range(warmup):
        step()
    synchronize(device)
    rates = []
    for _ in range(windows):
        start = time.perf_counter()
        for _ in range(steps):
            out = step()
        if isinstance(out, dict):
            [value.item() if torch.is_tensor(value) else value for value in out.values()]  # one sync per window
        synchronize(device)
        rates.append(steps * batch_size / (time.perf_counter() - start))
    return statistics.median(rates)


def flops_per_image(step, batch_size: int) -> float:
    """FLOPs of one training step (forward + backward of all networks) per image."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops() / batch_size


def peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # process peak RSS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", default=None, help="default: 64,128,256 on CPU; 64,256,1024,2048 on a GPU")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default: 3 on CPU, 30 on a GPU)")
    parser.add_argument("--steps", type=int, default=None, help="steps per timed window (default: 5 on CPU, 50 on a GPU)")
    parser.add_argument("--windows", type=int, default=3)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--no-reference", action="store_true", help="skip the eager fp32 reference loop")
    parser.add_argument("--write", action="store_true", help="record the table in BENCHMARKS.md")
    args = parser.parse_args(argv)
    gpu = args.device != "cpu" and torch.cuda.is_available()
    args.batch_sizes = args.batch_sizes or ("64,256,1024,2048" if gpu else "64,128,256")
    args.warmup = args.warmup if args.warmup is not None else (30 if gpu else 3)  # GPU: cuDNN picks its kernels first
    args.steps = args.steps or (50 if gpu else 5)  # a GPU window of 5 steps would be a few milliseconds
    config = ModelConfig()
    images = torch.randint(0, 256, (8192, 1, 64, 64), dtype=torch.uint8)
    data = EyeData(images, torch.arange(8192) % 2, torch.zeros(8192, dtype=torch.int8), [str(i) for i in range(8192)])
    rows = []
    with tempfile.TemporaryDirectory() as out_dir:
        for batch_size in map(int, args.batch_sizes.split(",")):
            train_config = TrainConfig(out_dir=out_dir, batch_size=batch_size, warmup_epochs=0, device=args.device, compile=args.compile)
            trainer = Trainer(train_config, config, data)
            device = trainer.device
            order = torch.randperm(len(images))

            def ours():
                start = torch.randint(0, len(images) - batch_size, ()).item()
                return trainer.train_step(trainer.batch(order[start : start + batch_size]))

            rate = measure(ours, batch_size, device, args.warmup, args.steps, args.windows)
            flops = flops_per_image(ours, batch_size)
            rows.append(("this project", batch_size, rate, flops, peak_memory_mb(device), trainer.accelerator.mixed_precision))
            if not args.no_reference:
                reference = ReferenceLoop(config, device, images, batch_size)
                ref_rate = measure(reference.step, batch_size, device, args.warmup, args.steps, args.windows)
                ref_flops = flops_per_image(reference.step, batch_size)
                rows.append(("eager fp32 reference", batch_size, ref_rate, ref_flops, peak_memory_mb(device), "no"))
            print(*[f"{r[0]} bs={r[1]}: {r[2]:.0f} img/s" for r in rows[-2:]], sep="\n", flush=True)
    peak = peak_flops(device)
    lines = [
        f"Command: `python benchmarks/train_speed.py --batch-sizes {args.batch_sizes}{' --compile' if args.compile else ''}` "
        f"(commit {git_commit()}, {time.strftime('%Y-%m-%d')})",
        f"Machine: {machine()}; measured bf16 matmul peak {peak / 1e12:.2f} TFLOP/s.",
        "",
        "| loop | batch | precision | images/s | GFLOP per image | achieved TFLOP/s | % of peak | peak memory (MB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, batch_size, rate, flops, memory, precision in rows:
        achieved = rate * flops
        lines.append(
            f"| {name} | {batch_size} | {precision} | {rate:.0f} | {flops / 1e9:.2f} | {achieved / 1e12:.3f} | {100 * achieved / peak:.1f} | {memory:.0f} |"
        )
    speedups = [
        f"batch {ours[1]}: {ours[2] / ref[2]:.2f}x" for ours, ref in zip(rows[::2], rows[1::2])
    ] if not args.no_reference else []
    if speedups:
        lines += ["", "Speed-up over the reference loop: " + ", ".join(speedups) + "."]
    table = "\n".join(lines)
    print(table)
    if args.write:
        write_section(f"Training speed ({'GPU' if device.type == 'cuda' else 'CPU'})", table)


if __name__ == "__main__":
    main()
