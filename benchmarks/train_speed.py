"""Training throughput of the default 64x64 VAE-GAN: this project's step vs an eager fp32 reference (and pythae).

    python benchmarks/train_speed.py [--batch-sizes 64,128] [--mixed-precision no] [--peer pythae] [--write]

For each batch size the loops run in one process, their timed windows interleaved (ours,
reference, peer, ours, ...), so a shared or throttled CPU slows them alike; each ratio is the
median of the per-round ratios. Also: FLOPs per image (torch's FlopCounterMode), the achieved
FLOP/s over a peak measured in each row's precision (a matmul, timed for at most --peak-seconds),
and the process's peak memory.

The loops, all on the same networks (3.73 M parameters) and the same batches:
- this project: `Trainer.train_step` with the default recipe (pixel, KL, label on latent unit 0,
  learned similarity, GAN terms on prior samples and on reconstructions routed to the decoder
  only, EMA), in the run's precision;
- eager fp32 reference: the same recipe, losses and gradients written the plain way (one forward
  per network and batch, one backward per network into its own parameters, a Python EMA loop,
  a host sync every step); tests/test_train_speed.py checks that its gradients equal the step's;
- pythae (`--peer pythae`, `pip install pythae==0.1.2 --no-deps`): pythae's own VAEGAN loss and
  coupled-optimiser update (three backward passes, its equilibrium gate) with this project's
  encoder, decoder and discriminator wrapped in pythae's interfaces; fp32 (pythae's autocast is
  CUDA-only).
"""

from __future__ import annotations

import argparse
import copy
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
from torch.nn.utils import parametrize

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import git_commit, machine, write_section  # noqa: E402
from vaegan import losses  # noqa: E402
from vaegan.config import ModelConfig, TrainConfig  # noqa: E402
from vaegan.data import EyeData, to_float  # noqa: E402
from vaegan.networks import VAEGAN, Discriminator, toward_other_state  # noqa: E402
from vaegan.trainer import Trainer, cpu_bf16_supported, update_open_direction  # noqa: E402

DTYPES = {"no": torch.float32, "fp32": torch.float32, "bf16": torch.bfloat16}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bf16_support() -> str:
    """What this machine does with bf16: native kernels, or emulation that is slower than fp32."""
    if torch.cuda.is_available():
        return "bf16: native" if torch.cuda.is_bf16_supported() else "bf16: not supported"
    try:
        flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    except (OSError, StopIteration):
        flags = []
    named = [flag for flag in ("avx512_bf16", "amx_bf16") if flag in flags]
    if cpu_bf16_supported():
        return f"bf16: native ({', '.join(named) or 'oneDNN'})"
    return "bf16: no native support (no AVX512-BF16 / AMX; bf16 would be emulated, so auto runs fp32)"


def peak_flops(device: torch.device, dtype: torch.dtype, seconds: float = 3.0) -> float:
    """Best measured FLOP/s of a square matmul in `dtype`: the practical peak for that precision, in bounded time.

    The size doubles from 256 while one product takes under 20 ms (up to 8192 on a GPU, 2048 on a
    CPU), then products are timed until `seconds` have passed; a slow emulated dtype stops early.
    """
    deadline = time.perf_counter() + seconds
    largest = 8192 if device.type == "cuda" else 2048
    n, best = 256, 0.0
    while time.perf_counter() < deadline:
        a, b = (torch.randn(n, n, device=device).to(dtype) for _ in range(2))
        a @ b  # first call: allocation and kernel choice, untimed
        synchronize(device)
        start = time.perf_counter()
        a @ b
        synchronize(device)
        took = time.perf_counter() - start
        best = max(best, 2 * n**3 / took)
        if took < 0.02 and n < largest:
            n *= 2
    return best


class ReferenceLoop:
    """Trainer.train_step's recipe written the plain way: eager fp32, one backward per network, host sync every step."""

    def __init__(self, model_config: ModelConfig, config: TrainConfig, device: torch.device):
        self.config, self.latent_dim, self.step_count = config, model_config.latent_dim, 0
        self.model = VAEGAN(model_config).to(device)
        self.disc = Discriminator(model_config, config.feature_depth).to(device)
        self.open_direction = torch.zeros(model_config.latent_dim, device=device)
        self.ema = copy.deepcopy(self.model).requires_grad_(False)
        adam = dict(betas=(config.beta1, config.beta2))
        self.opt_encoder = torch.optim.Adam(self.model.encoder.parameters(), config.lr, **adam)
        self.opt_decoder = torch.optim.Adam(self.model.decoder.parameters(), config.lr, **adam)
        self.opt_disc = torch.optim.Adam(self.disc.parameters(), config.lr_discriminator, **adam)

    def step(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, float]:
        cfg = self.config
        z_prior = torch.randn(len(x), self.latent_dim, device=x.device)  # drawn in Trainer.train_step's order
        mu, logvar = self.model.encode(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        x_rec = self.model.decode(z)
        state = cfg.state_weight > 0
        # generated: prior samples, and with the state term the reconstructions moved to the other state (decoder only)
        if state:
            update_open_direction(self.open_direction, mu, labels)
            z_gen = torch.cat([z_prior, toward_other_state(z.detach(), labels, self.open_direction)])
        else:
            z_gen = z_prior
        x_gen = self.model.decode(z_gen)
        with parametrize.cached():  # one spectral-norm estimate for the three batches, as in the trainer
            logit_real, state_real, features_real = self.disc(x)
            logit_rec, _, features_rec = self.disc(x_rec)
            logit_gen, state_gen, _ = self.disc(x_gen)
        loss_disc = losses.discriminator_loss(logit_real, torch.cat([logit_rec, logit_gen]))
        pixel = cfg.pixel_weight * losses.pixel_reconstruction(x_rec, x)
        feature = cfg.feature_weight * losses.feature_reconstruction(features_rec, features_real) * x[0].numel()
        kl = cfg.kl_weight * losses.kl_divergence(mu, logvar)
        label = cfg.label_weight * losses.latent_label_loss(mu, labels)
        gan = cfg.gan_weight * (losses.generator_loss(logit_gen) + losses.generator_loss(logit_rec))
        loss_encoder = pixel + kl + label + feature
        loss_decoder = pixel + feature + gan
        if state:
            loss_disc = loss_disc + cfg.state_weight * losses.state_loss(state_real, labels.float())
            target = torch.cat([losses.latent_state(z_prior), 1 - labels.float()])
            loss_decoder = loss_decoder + cfg.state_weight * losses.state_loss(state_gen, target)
        for optimizer in (self.opt_encoder, self.opt_decoder, self.opt_disc):
            optimizer.zero_grad(set_to_none=True)
        loss_disc.backward(inputs=list(self.disc.parameters()), retain_graph=True)
        loss_encoder.backward(inputs=list(self.model.encoder.parameters()), retain_graph=True)
        loss_decoder.backward(inputs=list(self.model.decoder.parameters()))
        for optimizer in (self.opt_encoder, self.opt_decoder, self.opt_disc):
            optimizer.step()
        self.step_count += 1
        decay = min(cfg.ema_decay, (1 + self.step_count) / (10 + self.step_count))
        with torch.no_grad():
            for ema, param in zip(self.ema.parameters(), self.model.parameters()):
                ema.lerp_(param, 1.0 - decay)
        return {"encoder": loss_encoder.item(), "decoder": loss_decoder.item(), "disc": loss_disc.item()}


class PythaePeer:
    """pythae 0.1.2's VAEGAN training step (its loss, its coupled-optimiser update) on this project's networks."""

    def __init__(self, model_config: ModelConfig, config: TrainConfig, device: torch.device, images: torch.Tensor, out_dir: str):
        from pythae.data.datasets import BaseDataset
        from pythae.models import VAEGAN as PythaeVAEGAN
        from pythae.models import VAEGANConfig
        from pythae.models.base.base_utils import ModelOutput
        from pythae.models.nn import BaseDecoder, BaseDiscriminator, BaseEncoder
        from pythae.trainers import CoupledOptimizerAdversarialTrainer, CoupledOptimizerAdversarialTrainerConfig

        class Encoder(BaseEncoder):
            def __init__(self, net: torch.nn.Module):
                super().__init__()
                self.net = net

            def forward(self, x: torch.Tensor) -> ModelOutput:
                mu, logvar = self.net(x)
                return ModelOutput(embedding=mu, log_covariance=logvar)

        class Decoder(BaseDecoder):
            def __init__(self, net: torch.nn.Module):
                super().__init__()
                self.net = net

            def forward(self, z: torch.Tensor) -> ModelOutput:
                return ModelOutput(reconstruction=self.net(z))

        class Disc(BaseDiscriminator):
            """Stops at the deepest layer asked for, as pythae's own discriminators do; `embedding` is P(real)."""

            def __init__(self, net: Discriminator):
                super().__init__()
                self.net, self.depth = net, len(net.blocks)

            def forward(self, x: torch.Tensor, output_layer_levels: list[int] | None = None) -> ModelOutput:
                levels = output_layer_levels or []
                deepest = self.depth if not levels or -1 in levels else max(levels)
                output, h = ModelOutput(), x
                for depth, block in enumerate(self.net.blocks[:deepest], start=1):
                    h = block(h)
                    if depth in levels:
                        output[f"embedding_layer_{depth}"] = h
                if deepest == self.depth:
                    output["embedding"] = torch.sigmoid(self.net.head(h.flatten(1))[:, 0])
                return output

        vae = VAEGAN(model_config)
        disc = Discriminator(model_config, config.feature_depth)
        shape = (model_config.channels, model_config.image_size, model_config.image_size)
        pythae_config = VAEGANConfig(input_dim=shape, latent_dim=model_config.latent_dim, reconstruction_layer=disc.feature_depth)
        self.model = PythaeVAEGAN(pythae_config, encoder=Encoder(vae.encoder), decoder=Decoder(vae.decoder), discriminator=Disc(disc))
        self.parameters = sum(p.numel() for p in self.model.parameters())
        ours = sum(p.numel() for p in (*vae.parameters(), *disc.parameters()))
        assert self.parameters == ours, f"pythae's model has {self.parameters} parameters, ours {ours}"
        adam = {"betas": (config.beta1, config.beta2)}
        trainer_config = CoupledOptimizerAdversarialTrainerConfig(
            output_dir=out_dir, per_device_train_batch_size=64, no_cuda=device.type != "cuda",
            encoder_learning_rate=config.lr, decoder_learning_rate=config.lr, discriminator_learning_rate=config.lr_discriminator,
            encoder_optimizer_params=adam, decoder_optimizer_params=adam, discriminator_optimizer_params=adam,
        )  # fmt: skip
        sample = to_float(images[:64])
        self.trainer = CoupledOptimizerAdversarialTrainer(self.model, BaseDataset(sample, torch.zeros(len(sample))), training_config=trainer_config)
        self.trainer.set_encoder_optimizer()
        self.trainer.set_decoder_optimizer()
        self.trainer.set_discriminator_optimizer()
        self.model.train()
        self.steps = self.skipped_decoder = self.skipped_discriminator = 0

    def step(self, x: torch.Tensor) -> dict[str, float]:
        """The body of pythae's CoupledOptimizerAdversarialTrainer.train_step loop for one batch."""
        from pythae.data.datasets import DatasetOutput

        output = self.trainer.model(DatasetOutput(data=x), epoch=1, dataset_size=len(x), uses_ddp=False)
        self.trainer._optimizers_step(output)
        self.steps += 1
        self.skipped_decoder += not output.update_decoder
        self.skipped_discriminator += not output.update_discriminator
        return {name: output[name].item() for name in ("encoder_loss", "decoder_loss", "discriminator_loss")}


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


def interleaved(loops: dict, batch_size: int, device: torch.device, warmup: int, steps: int, windows: int) -> dict[str, list[float]]:
    """Images/s of each loop in each round: one timed window of `steps` steps per loop per round, loops taking turns."""
    for step in loops.values():
        for _ in range(warmup):
            step()
    synchronize(device)
    rates = {name: [] for name in loops}
    for _ in range(windows):
        for name, step in loops.items():
            start = time.perf_counter()
            for _ in range(steps):
                out = step()
            [value.item() for value in out.values() if torch.is_tensor(value)]  # our step returns tensors: one sync per window
            synchronize(device)
            rates[name].append(steps * batch_size / (time.perf_counter() - start))
    return rates


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", default=None, help="default: 64,128,256 on CPU; 64,256,1024,2048 on a GPU")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--mixed-precision", default="auto", choices=["auto", "no", "bf16"], help="this project's step (auto: bf16 where native)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps of each loop first (default: 3 on CPU, 30 on a GPU)")
    parser.add_argument("--steps", type=int, default=None, help="steps per timed window (default: 3 on CPU, 50 on a GPU)")
    parser.add_argument("--windows", type=int, default=5, help="timed windows of each loop, interleaved")
    parser.add_argument("--peak-seconds", type=float, default=3.0, help="time limit of each precision's peak matmul timing")
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--no-reference", action="store_true", help="skip the eager fp32 reference loop")
    parser.add_argument("--peer", choices=["pythae"], help="also time pythae's VAEGAN step on the same networks")
    parser.add_argument("--write", action="store_true", help="record the table in BENCHMARKS.md")
    args = parser.parse_args(argv)
    gpu = args.device != "cpu" and torch.cuda.is_available()
    args.batch_sizes = args.batch_sizes or ("64,256,1024,2048" if gpu else "64,128,256")
    args.warmup = args.warmup if args.warmup is not None else (30 if gpu else 3)  # GPU: cuDNN picks its kernels first
    args.steps = args.steps or (50 if gpu else 3)  # a GPU window of 5 steps would be a few milliseconds
    config = ModelConfig()
    count = 8192
    images = torch.randint(0, 256, (count, 1, 64, 64), dtype=torch.uint8)
    labels = torch.arange(count) % 2
    data = EyeData(images, labels, torch.zeros(count, dtype=torch.int8), [str(i) for i in range(count)])
    description = f"{machine()}, {bf16_support()}"
    print(description, flush=True)
    rows, ratios, gates = [], [], []
    with tempfile.TemporaryDirectory() as out_dir:
        for batch_size in map(int, args.batch_sizes.split(",")):
            train_config = TrainConfig(
                out_dir=out_dir, batch_size=batch_size, warmup_epochs=0, device=args.device, compile=args.compile,
                mixed_precision=args.mixed_precision,
            )  # fmt: skip
            trainer = Trainer(train_config, config, data)
            device, precision = trainer.device, trainer.accelerator.mixed_precision
            order = torch.randperm(count)
            batch = {}

            def next_batch() -> None:  # the same images for every loop in a round
                start = torch.randint(0, count - batch_size, ()).item()
                batch["index"] = order[start : start + batch_size]

            def ours():
                next_batch()
                index = batch["index"]
                return trainer.train_step(trainer.batch(index), trainer.labels[index])

            loops = {"this project": ours}
            if not args.no_reference:
                reference = ReferenceLoop(config, train_config, device)
                loops["eager fp32 reference"] = lambda: reference.step(to_float(images[batch["index"]]).to(device), labels[batch["index"]].to(device))
            if args.peer == "pythae":
                peer = PythaePeer(config, train_config, device, images, out_dir)
                loops["pythae 0.1.2 VAEGAN"] = lambda: peer.step(to_float(images[batch["index"]]).to(device))
            rates = interleaved(loops, batch_size, device, args.warmup, args.steps, args.windows)
            for name, step in loops.items():
                loop_precision = precision if name == "this project" else "no"
                flops = flops_per_image(step, batch_size)
                rows.append((name, batch_size, statistics.median(rates[name]), flops, peak_memory_mb(device), loop_precision))
                if name != "this project":
                    per_round = [a / b for a, b in zip(rates["this project"], rates[name])]
                    ratios.append(f"batch {batch_size}: {statistics.median(per_round):.2f}x {name} (per round {', '.join(f'{r:.2f}' for r in per_round)})")
            if args.peer == "pythae":
                peer_params = f"{peer.parameters:,} parameters in both"
                gates.append(
                    f"batch {batch_size}: {peer.skipped_decoder} of {peer.steps} steps skipped the decoder update, "
                    f"{peer.skipped_discriminator} the discriminator update ({peer_params})"
                )
            for row in rows[-len(loops) :]:
                print(f"{row[0]} bs={row[1]} ({row[5]}): {row[2]:.0f} img/s", flush=True)
    peaks = {name: peak_flops(device, DTYPES[name], args.peak_seconds) for name in sorted({row[5] for row in rows})}
    flags = "".join(
        f" --{name} {value}" for name, value in (("batch-sizes", args.batch_sizes), ("mixed-precision", args.mixed_precision)) if value
    ) + (" --compile" if args.compile else "") + (" --no-reference" if args.no_reference else "") + (f" --peer {args.peer}" if args.peer else "")
    lines = [
        f"Command: `python benchmarks/train_speed.py{flags}` (commit {git_commit()}, {time.strftime('%Y-%m-%d')}; "
        f"{args.windows} interleaved windows of {args.steps} steps per loop after {args.warmup} warm-up steps)",
        f"Machine: {description}.",
        "Measured matmul peak: " + ", ".join(f"{'fp32' if name == 'no' else name} {peak / 1e12:.3f} TFLOP/s" for name, peak in peaks.items()) + ".",
        "",
        "| loop | batch | precision | images/s | GFLOP per image | achieved TFLOP/s | % of peak (same precision) | peak memory (MB) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, batch_size, rate, flops, memory, precision in rows:
        achieved = rate * flops
        lines.append(
            f"| {name} | {batch_size} | {precision} | {rate:.0f} | {flops / 1e9:.2f} | {achieved / 1e12:.3f} | "
            f"{100 * achieved / peaks[precision]:.1f} | {memory:.0f} |"
        )
    if ratios:
        lines += ["", "This project's speed over the other loops (median of the per-round ratios):", ""] + [f"- {r}" for r in ratios]
    if gates:
        lines += ["", "pythae's equilibrium gate:", ""] + [f"- {g}" for g in gates]
    table = "\n".join(lines)
    print(table)
    if args.write:
        kind = "GPU" if device.type == "cuda" else "CPU"
        write_section(f"Training speed ({kind}{', vs pythae' if args.peer else ''})", table)


if __name__ == "__main__":
    main()
