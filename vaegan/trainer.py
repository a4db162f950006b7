"""Trainer: optimisers, Accelerate, train_step, the loop, validation, sample grids, and save / resume of one checkpoint file.

What comes after training (the model dir: latent map, evaluation, model card) is
`vaegan.pipeline`, called by train.py; the process's random seed is set by train.py too.

Gradient routing follows Larsen et al. 2016: the encoder learns from KL + reconstruction
(pixels and discriminator features), never from the GAN term; the decoder also gets the
non-saturating GAN term on prior samples and on reconstructions; the discriminator sees
real images, reconstructions and prior samples. An EMA copy of the encoder / decoder is
what gets sampled, validated and exported. All losses are computed from one forward pass per batch before
any optimiser steps, and each backward writes only into its own parameters.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import time
from dataclasses import asdict
from pathlib import Path

import torch
from accelerate import Accelerator
from safetensors.torch import load_file
from torch.nn.utils import parametrize
from tqdm.auto import tqdm

from vaegan import first_line, losses
from vaegan.config import ModelConfig, TrainConfig
from vaegan.data import EyeData, augment, to_float
from vaegan.metrics import active_units
from vaegan.networks import DISCRIMINATOR_FILE, DISCRIMINATOR_NORMS, VAEGAN, Discriminator, toward_other_state
from vaegan.pictures import preview_inputs, save_reconstructions, save_samples

logger = logging.getLogger(__name__)

CHECKPOINT_FILE = "checkpoint/state.pt"
R1_EVERY = 4  # steps between R1 penalties, each weighted 4x (lazy regularisation, Karras et al. 2020): the same pull at a quarter of the cost


class TrainingError(Exception):
    """Training can't go on (non-finite loss, a checkpoint that does not match the run)."""


def cpu_bf16_supported() -> bool:
    """True where oneDNN has native bf16 kernels (AVX512-BF16 / AMX): there bf16 autocast doubles CPU speed."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def validate_train_config(config: TrainConfig) -> None:
    """Raise ValueError for settings a run can't honour, before any data is read."""
    choices = {"device": ("auto", "cpu", "cuda"), "mixed_precision": ("auto", "no", "bf16"), "discriminator_norm": DISCRIMINATOR_NORMS}
    for name, allowed in choices.items():
        if getattr(config, name) not in allowed:
            raise ValueError(f"{name} must be one of {', '.join(allowed)}, got {getattr(config, name)!r}")
    at_least = {"epochs": 1, "batch_size": 1, "feature_depth": 1, "log_every": 1, "sample_every": 1, "map_size": 10, "num_workers": 0,
                "discriminator_warmup_steps": 0}
    at_least |= {"max_steps": 1} if config.max_steps is not None else {}
    for name, least in at_least.items():
        if getattr(config, name) < least:
            raise ValueError(f"{name} must be at least {least}, got {getattr(config, name)!r}")
    for name in ("lr", "lr_discriminator", "kl_weight", "label_weight", "state_weight", "discriminator_state_weight", "pixel_weight",
                 "feature_weight", "gan_weight", "r1_weight", "warmup_epochs"):
        value = warmup_epochs(config) if name == "warmup_epochs" else getattr(config, name)  # None: the default, see warmup_epochs()
        if value is None:  # discriminator_state_weight unset: --state-weight's, checked already
            continue
        if not math.isfinite(value) or value < 0:  # 0 is allowed: a zero learning rate freezes that network
            raise ValueError(f"{name} must be a finite number of at least 0, got {value!r}")
    for name in ("beta1", "beta2", "ema_decay"):
        if not 0 <= getattr(config, name) < 1:
            raise ValueError(f"{name} must be in [0, 1), got {getattr(config, name)!r}")
    if config.label_augment and config.label_weight == 0:
        raise ValueError("label_augment augments what the label term reads, and --label-weight 0 turns that term off")
    if config.encoder_only and not (config.init_from or config.resume):
        raise ValueError("encoder_only trains the encoder against a finished decoder: give the model dir to refit with --init-from")
    if not (0 <= config.val_fraction < 1 and 0 <= config.test_fraction < 1 and config.val_fraction + config.test_fraction < 1):
        raise ValueError(f"val_fraction and test_fraction must be in [0, 1) and leave a train split, got {config.val_fraction!r} and {config.test_fraction!r}")


def warmup_epochs(config: TrainConfig) -> float:
    """The VAE-only warm-up: as set, else 1 epoch from scratch and none with --init-from (the decoder is trained already)."""
    if config.warmup_epochs is not None:
        return config.warmup_epochs
    return 0.0 if config.init_from else 1.0


@torch.no_grad()
def update_open_direction(direction: torch.Tensor, mu: torch.Tensor, labels: torch.Tensor, rate: float = 0.02) -> None:
    """Move the running mean(mu | open) - mean(mu | closed) toward this batch's, in place (a running mean over about
    1 / rate batches; the first batch with both states sets it). A batch of one state leaves it as it is."""
    is_open = labels == 1
    if is_open.any() and not is_open.all():
        batch = mu[is_open].float().mean(0) - mu[~is_open].float().mean(0)
        direction.lerp_(batch, rate if direction.any() else 1.0)


def make_accelerator(config: TrainConfig) -> Accelerator:
    """Accelerator for the requested device; bf16 autocast where the GPU or CPU supports it."""
    if config.device == "cuda" and not torch.cuda.is_available():
        raise TrainingError("--device cuda was asked for, but no CUDA GPU is available")
    cpu = config.device == "cpu" or not torch.cuda.is_available()
    precision = config.mixed_precision
    if precision == "auto":
        precision = "bf16" if (cpu_bf16_supported() if cpu else torch.cuda.is_bf16_supported()) else "no"
    return Accelerator(cpu=cpu, mixed_precision=precision)


class Trainer:
    """Trains a VAEGAN (and its discriminator) on an EyeData set: checkpoints, metrics.jsonl and sample grids under out_dir.

    Model initialisation and every random draw of a step come from torch's global RNG: seed it
    (train.py: torch.manual_seed(config.seed)) before building a Trainer for a reproducible run;
    the checkpoint saves and restores its state.
    """

    def __init__(self, config: TrainConfig, model_config: ModelConfig, data: EyeData, accelerator: Accelerator | None = None):
        validate_train_config(config)
        self.config = config
        self.model_config = model_config
        self.out_dir = Path(config.out_dir)
        self.accelerator = accelerator or make_accelerator(config)
        self.device = self.accelerator.device
        self.train_data = data.subset("train")
        held_out = data.held_out()
        self.val_data = held_out if len(held_out) else self.train_data
        if len(self.train_data) < 2:
            raise TrainingError(f"only {len(self.train_data)} training images; at least 2 are needed")
        self.batch_size = min(config.batch_size, len(self.train_data))  # per process
        self.processes = self.accelerator.num_processes  # several with `accelerate launch`: each its own batches
        self.steps_per_epoch = max(1, len(self.train_data) // (self.batch_size * self.processes))
        self.total_steps = config.epochs * self.steps_per_epoch
        if config.max_steps is not None:
            self.total_steps = min(self.total_steps, config.max_steps)
        self.warmup_steps = int(warmup_epochs(config) * self.steps_per_epoch)
        self.adversarial = model_config.model_type == "vaegan"
        if self.adversarial and self.warmup_steps >= self.total_steps:
            logger.warning(
                "the run (%d steps) ends within the VAE-only warm-up (%d steps, --warmup-epochs %g): the GAN terms never switch on, "
                "so this trains a plain VAE; lower --warmup-epochs or train longer",
                self.total_steps, self.warmup_steps, warmup_epochs(config),
            )

        on_gpu = self.device.type == "cuda"
        if on_gpu:
            torch.backends.cudnn.benchmark = True  # fixed image size: let cuDNN time its conv kernels once and keep the fastest
        # channels_last and fused Adam are GPU wins; on this CPU channels_last measured no faster
        self.memory_format = torch.channels_last if on_gpu else torch.contiguous_format
        model = VAEGAN(model_config)
        # on --resume the checkpoint replaces every weight, so --init-from's dir is not read (it may be gone by then)
        init_from = None if config.resume else config.init_from
        if init_from:
            self._load_weights(model, init_from)
        model = model.to(memory_format=self.memory_format)
        if config.encoder_only:  # the decoder's weights take no gradient (the encoder's still flows through it)
            model.decoder.requires_grad_(False)
        self.trained = [p for p in model.parameters() if p.requires_grad]  # what the VAE loss's backward writes into
        adam = dict(betas=(config.beta1, config.beta2), fused=on_gpu or None)
        opt_model = torch.optim.Adam(self.trained, lr=config.lr, **adam)
        if self.adversarial:
            discriminator = Discriminator(model_config, config.feature_depth, config.discriminator_norm)
            if init_from and not self._load_discriminator(discriminator, init_from) and config.encoder_only:
                raise TrainingError(f"--init-from {init_from}: --encoder-only refits the encoder against that model's trained "
                                    "discriminator, and none could be loaded (see above)")
            if config.encoder_only:  # D frozen too, in eval mode: no spectral-norm power iterations either
                discriminator.requires_grad_(False).eval()
            discriminator = discriminator.to(memory_format=self.memory_format)
            opt_disc = torch.optim.Adam(discriminator.parameters(), lr=config.lr_discriminator, **adam)
            self.model, self.discriminator, self.opt_model, self.opt_disc = self.accelerator.prepare(
                model, discriminator, opt_model, opt_disc
            )
        else:
            self.model, self.opt_model = self.accelerator.prepare(model, opt_model)
            self.discriminator = self.opt_disc = None
        unwrapped = self.accelerator.unwrap_model(self.model)
        self.forward, self.encode, self.decode, self.discriminate = self.model, unwrapped.encoder, unwrapped.decoder, self.discriminator
        self.ema = copy.deepcopy(unwrapped).eval().requires_grad_(False) if config.ema_decay > 0 else None  # before compiling
        if self.ema is not None:
            self._ema_params, self._model_params = list(self.ema.parameters()), list(unwrapped.parameters())
        if config.compile:
            # the discriminator's backward keeps the graph for the VAE's backward (retain_graph=True),
            # which compiled graphs allow only without donated buffers
            torch._functorch.config.donated_buffer = False
            # each network is compiled in place (weights keep their names), the encoder and decoder apart: the z
            # between them stays an eager tensor, which the GAN term on reconstructions differentiates against
            networks = [unwrapped.encoder, unwrapped.decoder]
            if self.adversarial:
                networks.append(self.accelerator.unwrap_model(self.discriminator))
            for network in networks:
                network.compile()
        images = self.train_data.images  # uint8: the 140k Kaggle crops at 64x64 are 0.6 GB
        fits = not on_gpu or images.nbytes < 0.25 * torch.cuda.mem_get_info(self.device)[0]
        self.images = images.to(self.device) if fits else images.pin_memory()  # on the device once, when it fits
        self.labels = self.train_data.labels.to(self.images.device)
        self.step = 0
        # running mean(mu | open) - mean(mu | closed) of the training batches: the slider's direction, which
        # the state term's edits move along (the page's map stores the same difference over the train split)
        self.open_direction = torch.zeros(model_config.latent_dim, device=self.device)
        self._last_total = 0.0  # the latest sum of logged losses: is the state worth a checkpoint?
        self.fixed_z, self.fixed_real = preview_inputs(data, model_config.latent_dim, config.seed)  # what the sample grids show

    def _load_weights(self, model: VAEGAN, source: str) -> None:
        """Fine-tuning: the encoder / decoder start from a model dir's weights (the discriminator: `_load_discriminator`)."""
        if not (Path(source) / "config.json").exists():
            raise TrainingError(f"--init-from {source}: not a model dir (no config.json)")
        try:
            pretrained = VAEGAN.from_pretrained(source, strict=True)
        except Exception as error:  # noqa: BLE001 - a damaged or foreign weights file
            raise TrainingError(f"--init-from {source}: could not load its weights ({type(error).__name__}: {error})") from error
        ours = asdict(self.model_config)
        differs = {k: v for k, v in asdict(pretrained.config).items() if ours[k] != v}
        if differs:
            flags = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in differs.items())
            raise TrainingError(f"--init-from {source}: that model was built with other settings; add {flags}")
        model.load_state_dict(pretrained.state_dict())
        logger.info("encoder / decoder initialised from %s", source)

    def _load_discriminator(self, discriminator: Discriminator, source: str) -> bool:
        """Fine-tuning a model dir: D starts from the one saved with it, else from the checkpoint of the run that made it.
        A saved D of another --discriminator-norm is left out: this run's starts afresh. Returns whether D was loaded.

        A fresh D gives the learned similarity nothing to say for its first hundreds of steps, and
        meanwhile the KL term squeezes the latent (measured: KL 103 -> 40 nats in one epoch).
        """
        path = Path(source) / DISCRIMINATOR_FILE
        if not path.exists():
            path = Path(source).parent / CHECKPOINT_FILE
        if not path.exists():
            logger.info("--init-from %s: no %s in it and no training checkpoint beside it, so the discriminator starts afresh",
                        source, DISCRIMINATOR_FILE)
            return False
        try:
            if path.suffix == ".safetensors":  # safetensors: no pickle, so a hostile file can't run code
                weights = load_file(path)  # fp16 in a bundle: load_state_dict copies it into D's fp32 weights
            else:
                weights = torch.load(path, map_location="cpu", weights_only=True).get("discriminator")
            if weights is None:
                raise TrainingError(f"{path} has no discriminator (a plain-VAE run)")
            if set(weights) != set(discriminator.state_dict()):
                kind = "spectral" if any("parametrizations" in name for name in weights) else "group"
                logger.warning("--init-from %s: its discriminator is of another kind (add --discriminator-norm %s to fine-tune "
                               "it), so this run's starts afresh", source, kind)
                return False
            discriminator.load_state_dict(weights)
        except Exception as error:  # noqa: BLE001 - a damaged or foreign checkpoint
            raise TrainingError(f"--init-from {source}: could not load the discriminator from {path} ({type(error).__name__}: {first_line(error)})") from error
        logger.info("discriminator initialised from %s", path)
        return True

    # ------------------------------------------------------------------ one step
    def train_step(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """One optimisation step on a float batch in [-1, 1] (and its open / closed labels); returns detached loss tensors (no host sync)."""
        cfg = self.config
        adversarial = self.adversarial and self.step >= self.warmup_steps  # D's terms are off during the warm-up
        # generated images teach only the decoder and D: under --encoder-only neither learns, so none are made, and
        # D sees only real eyes and reconstructions (for the learned similarity, which does reach the encoder)
        generates = self.adversarial and not cfg.encoder_only
        z_prior = torch.randn(len(x), self.model_config.latent_dim, device=x.device) if generates else None
        state = generates and cfg.state_weight > 0 and labels is not None
        with self.accelerator.autocast():
            # the generated images are decoded and discriminated apart from the reconstructions: the extra backward
            # passes that route the GAN term on reconstructions (3. below) then cover only the reconstructions' rows
            x_rec, mu, logvar, z = self.forward(x)
            x_gen = None
            if generates:  # prior samples, and with the state term the reconstructions moved to the other eye state
                z_gen = torch.cat([z_prior, self.slider_edit(mu, z, labels)]) if state else z_prior
                x_gen = self.decode(z_gen)
            kl = losses.kl_divergence(mu.float(), logvar.float())
            pixel = losses.pixel_reconstruction(x_rec.float(), x)
            loss_model = cfg.pixel_weight * pixel + cfg.kl_weight * kl
            logs = {"pixel": pixel, "kl": kl}
            if cfg.label_weight > 0 and labels is not None:
                label = losses.latent_label_loss(mu, labels)
                if cfg.label_augment:  # and from the same eye shifted and lit otherwise: unit 0 learns to read the state alone
                    mu_augmented = self.encode(augment(x))[0]
                    label = 0.5 * (label + losses.latent_label_loss(mu_augmented, labels))
                loss_model = loss_model + cfg.label_weight * label
                logs["label"] = label
            if self.adversarial:
                # 1. the discriminator on real, reconstructed and generated images, one pass each, with one
                # spectral-norm estimate for the three (cached: the same weights, one power iteration per step)
                with parametrize.cached():
                    logit_real, state_real, features_real = (t.float() for t in self.discriminate(x))
                    logit_rec, _, features_rec = (t.float() for t in self.discriminate(x_rec))
                    if generates:
                        logit_gen, state_gen_logit, _ = (t.float() for t in self.discriminate(x_gen))
                logs |= {"d_real": torch.sigmoid(logit_real).mean(), "d_rec": torch.sigmoid(logit_rec).mean()}
            if generates:
                loss_disc = losses.discriminator_loss(logit_real, torch.cat([logit_rec, logit_gen]))
                if cfg.r1_weight > 0 and self.step % R1_EVERY == 0:
                    x_r1 = x.detach().requires_grad_(True)
                    r1 = losses.r1_penalty(self.discriminate(x_r1)[0].float(), x_r1)
                    loss_disc = loss_disc + 0.5 * cfg.r1_weight * R1_EVERY * r1
                    logs["r1"] = r1
                logs |= {"disc": loss_disc, "d_fake": torch.sigmoid(logit_gen[: len(x)]).mean()}
                if state:
                    state_disc = losses.state_loss(state_real, labels.float())
                    d_weight = cfg.state_weight if cfg.discriminator_state_weight is None else cfg.discriminator_state_weight
                    loss_disc = loss_disc + d_weight * state_disc
                    logs["state_disc"] = state_disc
            if adversarial:
                # 2. encoder + decoder: learned similarity in D's features, GAN term on generated images
                feature = losses.feature_reconstruction(features_rec, features_real) * x[0].numel()
                loss_model = loss_model + cfg.feature_weight * feature
                logs["feature"] = feature
            if adversarial and generates:
                gan = losses.generator_loss(logit_gen)
                loss_model = loss_model + cfg.gan_weight * gan
                logs["gan"] = gan
                if state:
                    # 4. generated eyes must show their state: prior samples the one latent unit 0 encodes, and
                    # reconstructions moved one class-mean difference along the slider's direction the other
                    # one (decoder only: neither z reaches the encoder), so the page's slider opens and closes
                    # an eye (Odena et al.'s AC-GAN term; the edited reconstructions as in He et al.'s AttGAN)
                    target = torch.cat([losses.latent_state(z_prior), 1 - labels.float()])
                    state_gen = losses.state_loss(state_gen_logit, target)
                    loss_model = loss_model + cfg.state_weight * state_gen
                    logs["state_gen"] = state_gen
                if cfg.gan_reconstructions:
                    # 3. the GAN term on reconstructions too (Larsen et al. eq. 10), for the decoder only: its share
                    # of the gradient at z is taken out before it reaches the encoder. One backward per network
                    # keeps DistributedDataParallel (which allows one per step) working.
                    gan_rec = losses.generator_loss(logit_rec)
                    (grad_rec,) = torch.autograd.grad(cfg.gan_weight * gan_rec, x_rec, retain_graph=True)
                    (leak,) = torch.autograd.grad(x_rec, z, grad_rec, retain_graph=True)
                    z.register_hook(lambda grad: grad - leak)
                    loss_model = loss_model + cfg.gan_weight * gan_rec
                    logs["gan_rec"] = gan_rec
        self.opt_model.zero_grad(set_to_none=True)
        if generates:  # D learns
            self.opt_disc.zero_grad(set_to_none=True)
            # each backward writes only into its own parameters: D never learns from the VAE loss
            self.accelerator.backward(loss_disc, inputs=list(self.discriminator.parameters()), retain_graph=True)
        if self.step >= cfg.discriminator_warmup_steps:  # else only D learns (a fresh D behind a trained model)
            self.accelerator.backward(loss_model, inputs=self.trained)
            self.opt_model.step()
        if generates:
            self.opt_disc.step()
        self.step += 1
        self.update_ema()
        return {name: value.detach() for name, value in logs.items()}

    @torch.no_grad()
    def slider_edit(self, mu: torch.Tensor, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """z (detached) moved toward the other eye state by the running class-mean difference of mu, as the page's slider moves an eye."""
        update_open_direction(self.open_direction, mu, labels)
        return toward_other_state(z.detach(), labels, self.open_direction)

    @torch.no_grad()
    def update_ema(self) -> None:
        """Move the EMA weights toward the trained ones; the decay ramps up over the first steps (as in Karras et al.'s EMA warm-up)."""
        if self.ema is None:
            return
        decay = min(self.config.ema_decay, (1 + self.step) / (10 + self.step))
        torch._foreach_lerp_(self._ema_params, self._model_params, 1.0 - decay)

    def inference_model(self) -> VAEGAN:
        """The weights that are sampled, validated and exported: the EMA copy when there is one."""
        return self.ema if self.ema is not None else self.accelerator.unwrap_model(self.model)

    def discriminator_state(self) -> dict[str, torch.Tensor] | None:
        """The trained discriminator's weights, for the model dir (None for a plain VAE)."""
        return self.accelerator.unwrap_model(self.discriminator).state_dict() if self.adversarial else None

    def batch(self, index: torch.Tensor) -> torch.Tensor:
        """Float batch for the given image indices, with random horizontal flips (and shifts and lighting with --augment)."""
        x = self.images[index.to(self.images.device)].to(self.device, non_blocking=True)
        x = to_float(x).contiguous(memory_format=self.memory_format)  # (B, C, H, W)
        if self.config.hflip:
            flip = torch.rand(len(x), 1, 1, 1, device=x.device) < 0.5
            x = torch.where(flip, x.flip(3), x)
        if self.config.augment:
            x = augment(x)
        return x

    def epoch_order(self, epoch: int) -> torch.Tensor:
        """The seeded image order of an epoch (the same after a resume)."""
        generator = torch.Generator().manual_seed(self.config.seed * 100_003 + epoch)
        return torch.randperm(len(self.train_data), generator=generator)

    # ------------------------------------------------------------------ the loop
    def fit(self) -> VAEGAN:
        """Train to the requested epochs / steps; returns the model to export (inference_model, in eval mode)."""
        self.out_dir.mkdir(parents=True, exist_ok=True)
        (self.out_dir / "samples").mkdir(exist_ok=True)
        if self.config.resume:
            self.load_checkpoint()
        else:
            (self.out_dir / "metrics.jsonl").unlink(missing_ok=True)
        self._write_run_config()
        try:
            while self.step < self.total_steps:
                self._run_epoch()
        except KeyboardInterrupt:
            if math.isfinite(self._last_total):
                self.save_checkpoint()
                logger.warning("interrupted at step %d: checkpoint saved; continue with --resume", self.step)
            raise
        return self.inference_model().eval()

    def _run_epoch(self) -> None:
        epoch = self.step // self.steps_per_epoch
        first = self.step % self.steps_per_epoch
        last = min(self.steps_per_epoch, first + self.total_steps - self.step)
        order = self.epoch_order(epoch).to(self.images.device)  # indexed where the images are: no copy per step
        self.model.train()
        sums: dict[str, torch.Tensor] = {}
        started = time.perf_counter()
        bar = tqdm(
            range(first, last),
            desc=f"epoch {epoch + 1}/{self.config.epochs}",
            leave=False,
            disable=not self.accelerator.is_local_main_process,
        )
        for i in bar:
            start = (i * self.processes + self.accelerator.process_index) * self.batch_size
            index = order[start : start + self.batch_size]
            logs = self.train_step(self.batch(index), self.labels[index].to(self.device, non_blocking=True))
            for name, value in logs.items():
                sums[name] = sums.get(name, 0.0) + value
            if (i + 1 - first) % self.config.log_every == 0 or i + 1 == last:
                means = {name: (value / (i + 1 - first)).item() for name, value in sums.items()}
                self._check_finite(means)
                bar.set_postfix({name: f"{value:.3g}" for name, value in means.items()}, refresh=False)
        seconds = time.perf_counter() - started
        means = {name: (value / max(1, last - first)).item() for name, value in sums.items()}
        self._check_finite(means)
        record = {"epoch": epoch + 1, "step": self.step, "seconds": round(seconds, 2)}
        images = (last - first) * self.batch_size * self.processes  # all processes together
        record["images_per_second"] = round(images / max(seconds, 1e-9), 1)
        record |= {name: round(value, 5) for name, value in means.items()}
        record |= self.validate()
        if self.accelerator.is_main_process:
            if (epoch + 1) % self.config.sample_every == 0 or self.step >= self.total_steps:
                self.write_samples(epoch + 1)
            with open(self.out_dir / "metrics.jsonl", "a") as handle:
                handle.write(json.dumps(record) + "\n")
            self.save_checkpoint()
            logger.info(" ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items()))

    def _check_finite(self, means: dict[str, float]) -> None:
        self._last_total = sum(means.values())
        if not math.isfinite(self._last_total):
            bad = ", ".join(f"{name}={value}" for name, value in means.items() if not math.isfinite(value))
            raise TrainingError(
                f"non-finite loss at step {self.step} ({bad}); stopped. The last good checkpoint in "
                f"{self.out_dir / 'checkpoint'} is intact: lower --lr or --gan-weight and --resume."
            )

    @torch.no_grad()
    def validate(self, limit: int = 1024) -> dict[str, float]:
        """Held-out reconstruction MSE and active latent units, in eval mode."""
        model = self.inference_model().eval()
        x = to_float(self.val_data.images[:limit].to(self.device))
        mu, _ = model.encode(x)
        val_mse = (model.decode(mu) - x).pow(2).mean().item()
        active = active_units(mu.float())
        self.model.train()
        return {"val_mse": round(val_mse, 6), "active_units": active}

    @torch.no_grad()
    def write_samples(self, epoch: int) -> None:
        """Prior samples (fixed z) and held-out reconstructions (pairs of real | reconstructed)."""
        model = self.inference_model()
        save_samples(model, self.fixed_z, self.out_dir / "samples" / f"epoch_{epoch:03d}_samples.png")
        save_reconstructions(model, self.fixed_real, self.out_dir / "samples" / f"epoch_{epoch:03d}_recon.png")
        self.model.train()

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> Path:
        """Write everything needed to continue exactly, atomically (temp file, fsync, rename)."""
        state = {
            "step": self.step,
            "model_config": asdict(self.model_config),
            "seed": self.config.seed,
            "batch_size": self.batch_size,
            "processes": self.processes,
            "train_images": len(self.train_data),
            "encoder_only": self.config.encoder_only,
            "model": self.accelerator.unwrap_model(self.model).state_dict(),
            "opt_model": self.opt_model.state_dict(),
            "rng_cpu": torch.get_rng_state(),
            "open_direction": self.open_direction,
        }
        if torch.cuda.is_available():
            state["rng_cuda"] = torch.cuda.get_rng_state_all()
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        if self.adversarial:
            state["discriminator"] = self.accelerator.unwrap_model(self.discriminator).state_dict()
            state["opt_disc"] = self.opt_disc.state_dict()
        path = self.out_dir / CHECKPOINT_FILE
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(".tmp")
        with open(temporary, "wb") as handle:
            torch.save(state, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)  # the previous checkpoint survives a crash during the write
        return path

    def load_checkpoint(self) -> None:
        """Continue from out_dir/checkpoint, refusing one that does not match this run."""
        path = self.out_dir / CHECKPOINT_FILE
        if not path.exists():
            raise TrainingError(f"--resume: no checkpoint at {path}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)  # never unpickle code
        except Exception as error:  # noqa: BLE001
            raise TrainingError(f"--resume: {path} is not a readable checkpoint ({type(error).__name__}: {error})") from error
        expected = {
            "model_config": asdict(self.model_config),
            "seed": self.config.seed,
            "batch_size": self.batch_size,
            "processes": self.processes,
            "train_images": len(self.train_data),
            "encoder_only": self.config.encoder_only,
        }
        for key, value in expected.items():
            saved = state.get(key, False if key == "encoder_only" else None)  # older checkpoints: no encoder_only
            if saved != value:
                raise TrainingError(
                    f"--resume: the checkpoint was made with {key}={saved!r}, this run has {value!r}; "
                    "resume with the original settings or use a new --out-dir"
                )
        self.accelerator.unwrap_model(self.model).load_state_dict(state["model"])
        self.opt_model.load_state_dict(state["opt_model"])
        if self.ema is not None:
            if "ema" not in state:
                raise TrainingError(f"--resume: {path} has no EMA weights (made with --ema-decay 0); resume with --ema-decay 0")
            self.ema.load_state_dict(state["ema"])
        if self.adversarial:
            self.accelerator.unwrap_model(self.discriminator).load_state_dict(state["discriminator"])
            self.opt_disc.load_state_dict(state["opt_disc"])
        if "open_direction" in state:  # older checkpoints start the running direction afresh
            self.open_direction.copy_(state["open_direction"])
        torch.set_rng_state(state["rng_cpu"])
        if "rng_cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["rng_cuda"])
        self.step = state["step"]
        self._trim_metrics()
        logger.info("resumed from %s at step %d", path, self.step)

    def _trim_metrics(self) -> None:
        """Drop metric lines written after the checkpoint (a crash between the two writes)."""
        path = self.out_dir / "metrics.jsonl"
        if path.exists():
            lines = [line for line in path.read_text().splitlines() if line.strip()]
            kept = [line for line in lines if json.loads(line)["step"] <= self.step]
            path.write_text("".join(line + "\n" for line in kept))

    def _write_run_config(self) -> None:
        with open(self.out_dir / "train_config.json", "w") as handle:
            json.dump({"train": asdict(self.config), "model": asdict(self.model_config)}, handle, indent=2)

    def last_record(self) -> dict:
        """The last epoch's line of metrics.jsonl ({} before the first epoch)."""
        path = self.out_dir / "metrics.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        return json.loads(lines[-1]) if lines else {}
