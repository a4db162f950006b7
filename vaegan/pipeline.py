"""After training: the model dir that `app.py`, `vaegan.evaluate` and the Hub read.

One function, `write_model_dir`, called by train.py once the Trainer is done (and usable on
its own on any trained model): the weights and config (`save_pretrained`), the latent map of
the train split, the card pictures, the evaluation metrics and the model card. The Trainer
knows none of this; this module knows no optimiser.

    model dir/
      config.json, model.safetensors    the VAE (encoder + decoder), through PyTorchModelHubMixin
      discriminator.safetensors         the trained discriminator, where fine-tuning (--init-from) starts it from
      latent_map.safetensors            train-split latents, their UMAP coordinates, the probe, direction and latent mixture
      images/*.png                      samples, reconstructions, interpolation, latent map
      metrics.json                      the last logged epoch + the evaluation suite on the held-out eyes (val + test)
      README.md                         the model card
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path

import torch
from safetensors.torch import save_file

from vaegan import evaluate
from vaegan.card import write_model_card
from vaegan.data import EyeData
from vaegan.eye_features import DEFAULT_FEATURES, load_feature_network
from vaegan.latent_map import LatentMap, build_latent_map
from vaegan.networks import DISCRIMINATOR_FILE, VAEGAN
from vaegan.pictures import preview_inputs, write_card_images

logger = logging.getLogger(__name__)

# the model card scores a seeded sample of this many held-out eyes where there are more (the Kaggle set holds 35,000:
# all of them took the export on a 2-core CPU from 1.5 to 8.5 minutes, BENCHMARKS.md "Whole training run")
EVAL_IMAGES = 5000


def evaluation_metrics(
    model: VAEGAN, data: EyeData, latent_map: LatentMap | None, seed: int = 0, features: str | os.PathLike = DEFAULT_FEATURES
) -> dict[str, float]:
    """The evaluation suite's finite results, or {} (with the reason logged) where the eye-feature CNN can't score this model."""
    try:
        network = load_feature_network(features)
    except (OSError, ValueError) as error:
        logger.info("no evaluation suite for the model card: %s", error)
        return {}
    if (network.config.image_size, network.config.channels) != (model.config.image_size, model.config.channels):
        logger.info("the eye-feature CNN is for another image size / channel count: evaluation skipped")
        return {}
    try:
        # every eye the run held out (a seeded sample of EVAL_IMAGES where there are more): where a folder has test
        # and val splits of other sources (../shared/data: test is CEW's only), the test split alone would leave a
        # source out of the card's figures
        results = evaluate.evaluate(model, data, network, latent_map, split="val+test", max_images=EVAL_IMAGES, seed=seed)
    except ValueError as error:  # too few held-out images, say: the run itself is fine
        logger.warning("evaluation skipped: %s", error)
        return {}
    return {key: value for key, value in results.items() if math.isfinite(value)}  # no NaN in JSON


def write_model_dir(
    model: VAEGAN,
    data: EyeData,
    model_dir: str | os.PathLike,
    *,
    map_size: int = 5000,
    seed: int = 0,
    training: dict | None = None,
    logged: dict | None = None,
    features: str | os.PathLike = DEFAULT_FEATURES,
    discriminator: dict[str, torch.Tensor] | None = None,
) -> Path:
    """Write the model dir of a trained model; returns its path.

    `data` is the run's data set: the map is built from its train split (so no held-out eye is
    on it), the pictures and the evaluation use its held-out split. `training` is what the card
    says of the run (data_dir, command, images, steps); `logged` the last epoch's training log,
    which metrics.json carries beside the evaluation. `discriminator` (its state dict) is saved beside
    the model, so that `--init-from` this dir does not start D afresh.
    """
    model_dir = Path(model_dir)
    model.eval()
    model.save_pretrained(model_dir)
    if discriminator is not None:
        save_file({name: value.detach().cpu().contiguous() for name, value in discriminator.items()}, model_dir / DISCRIMINATOR_FILE)
    else:  # a plain VAE written over a VAE-GAN's dir must not keep (or push) that run's D
        (model_dir / DISCRIMINATOR_FILE).unlink(missing_ok=True)
    train = data.subset("train")
    latent_map = build_latent_map(model, train.images, train.labels, map_size, seed)
    latent_map.save(model_dir)
    z, real = preview_inputs(data, model.config.latent_dim, seed)
    write_card_images(model, latent_map, z, real, model_dir)
    metrics = dict(logged or {}) | evaluation_metrics(model, data, latent_map, seed, features)
    (model_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    write_model_card(model_dir, training, metrics)
    logger.info("model written to %s", model_dir)
    return model_dir
