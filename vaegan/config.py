"""Configuration dataclasses: ModelConfig (architecture, saved with the model) and TrainConfig (a run)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ModelConfig:
    """Architecture of the encoder / decoder / discriminator; written to config.json."""

    image_size: int = 64  # square images, a power of two from 16 to 256
    channels: int = 1  # 1 = grayscale, 3 = RGB
    latent_dim: int = 64  # size of z
    base_channels: int = 32  # width of the first conv layer; doubles at each stride-2 step
    max_channels: int = 256  # cap on the width of the deepest layers
    model_type: str = "vaegan"  # "vaegan" or "vae" (the plain-VAE baseline: no discriminator)
    final_upsample: str = "subpixel"  # last 2x upsampling of the decoder: "nearest" (+ 3x3 conv) or "subpixel"


@dataclass
class TrainConfig:
    """One training run; train.py exposes every field as a --flag of the same name."""

    data_dir: str | None = None  # folder of eye crops; None downloads the Kaggle dataset
    out_dir: str | None = None  # default runs/<timestamp>
    epochs: int = 20  # passes over the training split
    batch_size: int = 64  # images per optimiser step (per process)
    max_steps: int | None = None  # stop after this many optimiser steps (tiny runs, CI)
    resume: bool = False  # continue from out_dir/checkpoint
    init_from: str | None = None  # start the encoder / decoder from this model dir's weights (fine-tuning; the architecture flags must match it)
    seed: int = 0  # data split, order, initialisation and prior draws
    device: str = "auto"  # auto / cpu / cuda
    mixed_precision: str = "auto"  # auto (bf16 where the GPU / CPU supports it) / no / bf16
    compile: bool = False  # torch.compile the networks (slow first steps, faster after on GPUs)
    # optimisation
    lr: float = 2e-4  # Adam learning rate of the encoder / decoder
    lr_discriminator: float = 2e-4  # Adam learning rate of the discriminator
    beta1: float = 0.5  # Adam beta1 (0.5, as in DCGAN)
    beta2: float = 0.999  # Adam beta2
    # loss weights (see vaegan/losses.py)
    kl_weight: float = 0.3  # weight of KL(q(z|x) || N(0, I)) against the per-image pixel SSE
    pixel_weight: float = 0.25  # weight of the per-image pixel SSE
    feature_weight: float = 1.0  # Larsen et al.'s learned similarity in discriminator features
    gan_weight: float = 2.0  # weight of the decoder's non-saturating GAN terms
    label_weight: float = 10.0  # cross-entropy of open / closed read from latent unit 0 (semi-supervised; 0 = unsupervised)
    state_weight: float = 0.0  # AC-GAN term: D learns open / closed on real eyes; prior samples must show the state unit 0 encodes, and reconstructions moved as the page's slider moves them the other state (0 = off)
    discriminator_state_weight: float | None = None  # weight of D's own open / closed loss on real eyes (default: --state-weight); lower lets D's shared layers learn real / fake
    discriminator_norm: str = "spectral"  # "spectral" (every D weight spectral-normalised) or "group" (GroupNorm in D, weights free: use with --r1-weight)
    r1_weight: float = 0.0  # gamma of the R1 penalty on D's gradient at real eyes (Mescheder et al. 2018), applied every 4th step (0 = off)
    discriminator_warmup_steps: int = 0  # steps at the start where only D learns (for a fresh D behind an --init-from model)
    feature_depth: int = 3  # discriminator block whose features give the learned similarity (Larsen et al.: 3; lower = finer detail)
    encoder_only: bool = False  # train the encoder alone: the decoder and discriminator keep the --init-from model's weights, so its prior samples stay as they are (a last stage that refits the encoder to a finished decoder)
    gan_reconstructions: bool = True  # the decoder's GAN term also scores reconstructions (Larsen et al. eq. 10), not only prior samples
    warmup_epochs: float | None = None  # VAE-only epochs before the discriminator's terms switch on (default: 1, or 0 with --init-from: a trained decoder needs none, and a VAE-only epoch undoes its fine detail)
    ema_decay: float = 0.999  # exponential moving average of the encoder / decoder weights, exported and sampled (0 = off)
    hflip: bool = True  # random horizontal flips (a left eye mirrored is a right eye)
    label_augment: bool = False  # the label term also reads unit 0 of an --augment'ed copy of each eye (the reconstructions still train on the eyes as they are)
    augment: bool = False  # random shifts of up to 4 px (edges repeated), contrast x0.8-1.25 and brightness +-0.15 of each training eye
    # data
    val_fraction: float = 0.1  # seeded split where the folder has no train/val/test folders
    test_fraction: float = 0.1  # seeded test share where the folder has no split folders
    cache_dir: str | None = None  # decoded-image cache (default ~/.cache/vaegan, or $VAEGAN_CACHE)
    num_workers: int = 0  # decoding processes for the cache (0 = all cores)
    # outputs
    map_size: int = 5000  # images in the latent map
    sample_every: int = 1  # epochs between sample grids
    log_every: int = 25  # steps between reading losses back from the device
    push_to_hub: str | None = None  # REPO_ID to publish the model dir to after training
