"""The model card: README.md of a model dir (YAML metadata, description, metrics table, pictures)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from huggingface_hub import ModelCard, ModelCardData

from vaegan.data import KAGGLE_DATASET
from vaegan.latent_map import FILENAME as MAP_FILENAME
from vaegan.networks import DISCRIMINATOR_FILE, HUB_TAGS

CARD_METRICS = [
    ("recon_psnr", "reconstruction PSNR (dB)"),
    ("recon_ssim", "reconstruction SSIM"),
    ("recon_mse", "reconstruction MSE"),
    ("recon_sharpness", "fine detail of reconstructions (Laplacian variance / real's; 1 = as sharp as real)"),
    ("recon_frechet_distance", "Frechet distance, reconstructions vs real (eye-feature CNN)"),
    ("frechet_distance", "Frechet distance, prior samples vs real (eye-feature CNN)"),
    ("sample_sharpness", "fine detail of prior samples (Laplacian variance / real's; > 1 = noisier)"),
    ("mixture_frechet_distance", "Frechet distance, samples of the latent mixture (the page's default) vs real"),
    ("mixture_sample_sharpness", "fine detail of the latent mixture's samples (Laplacian variance / real's)"),
    ("kid", "KID, prior samples vs real (eye-feature CNN)"),
    ("probe_accuracy", "open / closed linear probe accuracy on mu"),
    ("probe_balanced_accuracy", "probe balanced accuracy"),
    ("knn_accuracy", "kNN accuracy on the 2-D map"),
    ("active_units", "active latent units"),
    ("label_preservation", "label preservation of reconstructions"),
    ("edit_flip", "open <-> closed edit: eyes moved one class-mean difference read as the other state"),
    ("val_mse", "held-out reconstruction MSE (training log)"),
]



def source_label(key: str) -> str | None:
    """The row label of a per-source metric (`recon_ssim[cew]`: "reconstruction SSIM, cew eyes only"), else None."""
    name, _, source = key.partition("[")
    what = {"recon_ssim": "reconstruction SSIM", "recon_sharpness": "fine detail of reconstructions"}.get(name)
    return f"{what}, {source[:-1]} eyes only" if what and source.endswith("]") else None


def write_model_card(model_dir: str | os.PathLike, training: dict | None = None, metrics: dict | None = None) -> Path:
    """Write README.md (YAML metadata + description, metrics table, pictures) into a model dir."""
    model_dir = Path(model_dir)
    config = json.loads((model_dir / "config.json").read_text())
    training = training or {}
    metrics = {key: value for key, value in (metrics or {}).items() if isinstance(value, (int, float))}
    data_dir = training.get("data_dir")
    data = {
        "library_name": "vaegan",
        "license": "mit",
        "pipeline_tag": "unconditional-image-generation",
        "tags": HUB_TAGS,
        "metrics": sorted({key for key in metrics if key in dict(CARD_METRICS)}),
    }
    if data_dir is None:
        data["datasets"] = [KAGGLE_DATASET]
    card_data = ModelCardData(**data)
    by_source = {key: label for key in metrics if (label := source_label(key))}  # after the pooled figures
    labels = dict(CARD_METRICS[:4]) | by_source | dict(CARD_METRICS[4:])
    rows = "\n".join(f"| {label} | {metrics[key]:.4g} |" for key, label in labels.items() if key in metrics)
    if "eval_images" in metrics:
        held = metrics.get("held_out_images", metrics["eval_images"])
        eyes = f"the {held:.0f}" if held <= metrics["eval_images"] else f"a seeded sample of {metrics['eval_images']:.0f} of the {held:.0f}"
        rows = f"On {eyes} eyes of the validation and test splits (none was trained on).\n\n| metric | value |\n|---|---|\n{rows}"
    else:
        rows = f"| metric | value |\n|---|---|\n{rows or '| (no metrics recorded) | |'}"
    pictures = "\n".join(
        f"![{name}](images/{name}.png)" for name in ("samples", "reconstructions", "interpolation", "latent_map")
        if (model_dir / "images" / f"{name}.png").exists()
    )
    discriminator = "" if not (model_dir / DISCRIMINATOR_FILE).exists() else (
        f"\nIts discriminator (`{DISCRIMINATOR_FILE}`) is here too: `train.py --init-from` a download of this repository fine-tunes from both."
    )
    command = training.get("command", "python train.py")
    source = f"the folder `{data_dir}`" if data_dir else f"the Kaggle dataset [{KAGGLE_DATASET}](https://www.kaggle.com/datasets/{KAGGLE_DATASET})"
    body = f"""
# VAE-GAN for open / closed eye crops

A VAE-GAN (Larsen et al. 2016, *Autoencoding beyond pixels using a learned similarity metric*)
trained on {config['image_size']}x{config['image_size']} {'grayscale' if config['channels'] == 1 else 'RGB'} eye crops, with a
{config['latent_dim']}-dimensional latent space, made with vaegan.
This repository holds the encoder and decoder (`model.safetensors`, `config.json`) and the
latent map (`{MAP_FILENAME}`: encoder means, their 2-D UMAP coordinates and open / closed labels).{discriminator}

## Use

```python
from vaegan import VAEGAN
model = VAEGAN.from_pretrained("REPO_ID").eval()
mu, logvar = model.encode(x)   # x: (B, {config['channels']}, {config['image_size']}, {config['image_size']}) in [-1, 1]
x_rec = model.decode(mu)
```

Explore it in the browser: `python app.py --model REPO_ID`.

## Training

Data: {source}. Command:

```
{command}
```

## Evaluation

{rows}

## Pictures

{pictures or '(none)'}
"""
    card = ModelCard(f"---\n{card_data.to_yaml()}\n---\n{body}")
    path = model_dir / "README.md"
    card.save(path)
    return path
