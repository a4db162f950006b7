"""The Hugging Face Hub: model card, push of a model dir, and loading a model + latent map from a dir or repo."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np
import torch
from huggingface_hub import CommitOperationAdd, HfApi, ModelCard, ModelCardData, get_token, hf_hub_download
from huggingface_hub.errors import (
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
)
from PIL import Image, ImageDraw
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torchvision.utils import save_image

from vaegan.data import KAGGLE_DATASET, to_float
from vaegan.latent_map import FILENAME as MAP_FILENAME
from vaegan.latent_map import LatentMap, slerp
from vaegan.networks import VAEGAN

logger = logging.getLogger(__name__)

MODEL_FILES = ["config.json", "model.safetensors", MAP_FILENAME, "README.md", "metrics.json", "images/*.png"]
CARD_METRICS = [
    ("recon_psnr", "reconstruction PSNR (dB)"),
    ("recon_ssim", "reconstruction SSIM"),
    ("recon_mse", "reconstruction MSE"),
    ("recon_sharpness", "fine detail of reconstructions (Laplacian variance / real's; 1 = as sharp as real)"),
    ("recon_frechet_distance", "Frechet distance, reconstructions vs real (eye-feature CNN)"),
    ("frechet_distance", "Frechet distance, prior samples vs real (eye-feature CNN)"),
    ("sample_sharpness", "fine detail of prior samples (Laplacian variance / real's; > 1 = noisier)"),
    ("kid", "KID, prior samples vs real (eye-feature CNN)"),
    ("probe_accuracy", "open / closed linear probe accuracy on mu"),
    ("probe_balanced_accuracy", "probe balanced accuracy"),
    ("knn_accuracy", "kNN accuracy on the 2-D map"),
    ("active_units", "active latent units"),
    ("label_preservation", "label preservation of reconstructions"),
    ("edit_flip", "open <-> closed edit: eyes moved one class-mean difference read as the other state"),
    ("val_mse", "held-out reconstruction MSE (training log)"),
]


class HubError(Exception):
    """A Hub operation failed (no token, offline, rejected upload, missing repo)."""


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
        "tags": ["vae-gan", "vae", "gan", "eyes", "latent-space", "pytorch"],
        "metrics": sorted({key for key in metrics if key in dict(CARD_METRICS)}),
    }
    if data_dir is None:
        data["datasets"] = [KAGGLE_DATASET]
    card_data = ModelCardData(**data)
    rows = "\n".join(f"| {label} | {metrics[key]:.4g} |" for key, label in CARD_METRICS if key in metrics)
    pictures = "\n".join(
        f"![{name}](images/{name}.png)" for name in ("samples", "reconstructions", "interpolation", "latent_map")
        if (model_dir / "images" / f"{name}.png").exists()
    )
    command = training.get("command", "python train.py")
    source = f"the folder `{data_dir}`" if data_dir else f"the Kaggle dataset [{KAGGLE_DATASET}](https://www.kaggle.com/datasets/{KAGGLE_DATASET})"
    body = f"""
# VAE-GAN for open / closed eye crops

A VAE-GAN (Larsen et al. 2016, *Autoencoding beyond pixels using a learned similarity metric*)
trained on {config['image_size']}x{config['image_size']} {'grayscale' if config['channels'] == 1 else 'RGB'} eye crops, with a
{config['latent_dim']}-dimensional latent space, made with [vaegan](https://github.com/vaegan/vaegan).
This repository holds the encoder and decoder (`model.safetensors`, `config.json`) and the
latent map (`{MAP_FILENAME}`: encoder means, their 2-D UMAP coordinates and open / closed labels).

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

| metric | value |
|---|---|
{rows or '| (no metrics recorded) | |'}

## Pictures

{pictures or '(none)'}
"""
    card = ModelCard(f"---\n{card_data.to_yaml()}\n---\n{body}")
    path = model_dir / "README.md"
    card.save(path)
    return path


@torch.no_grad()
def write_card_images(model: VAEGAN, latent_map: LatentMap | None, real: torch.Tensor, model_dir: str | os.PathLike) -> None:
    """Pictures for the model card in model_dir/images: samples, reconstructions, interpolation, latent map.

    `real` is a few held-out uint8 images; the reconstruction picture shows them beside
    their reconstructions (these go to the Hub with the card: pass images you may publish).
    """
    out = Path(model_dir) / "images"
    out.mkdir(parents=True, exist_ok=True)
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator().manual_seed(0)
    z = torch.randn(64, model.config.latent_dim, generator=generator).to(device)
    options = dict(normalize=True, value_range=(-1, 1))
    save_image(model.decode(z).float().cpu(), out / "samples.png", nrow=8, **options)
    x = to_float(real[:16].to(device))
    pairs = torch.stack([x, model.decode(model.encode(x)[0])], dim=1).flatten(0, 1)  # (2B, C, H, W): real, rec, ...
    save_image(pairs.float().cpu(), out / "reconstructions.png", nrow=8, **options)
    ends = model.encode(x[:2])[0] if len(x) > 1 else z[:2]
    path = slerp(ends[0].float().cpu().numpy(), ends[1].float().cpu().numpy(), np.linspace(0, 1, 10))  # (10, Z)
    strip = model.decode(torch.from_numpy(path).to(device))
    save_image(strip.float().cpu(), out / "interpolation.png", nrow=10, **options)
    if latent_map is not None:
        draw_latent_map(latent_map).save(out / "latent_map.png")


def draw_latent_map(latent_map: LatentMap, size: int = 640) -> Image.Image:
    """A static scatter of the latent map (closed red on top of open blue) for the model card."""
    image = Image.new("RGB", (size, size), "white")
    draw = ImageDraw.Draw(image)
    low, high = latent_map.xy.min(0), latent_map.xy.max(0)
    pixels = 20 + (latent_map.xy - low) / np.maximum(high - low, 1e-9) * (size - 40)
    for label, colour in ((1, (59, 130, 246)), (0, (239, 68, 68))):  # minority-friendly: closed drawn last
        for x, y in pixels[latent_map.labels == label]:
            draw.ellipse([x - 2, size - y - 2, x + 2, size - y + 2], fill=colour)
    draw.text((10, 6), "latent map (UMAP): blue = open, red = closed", fill="black")
    return image


def _check_model_dir(model_dir: str | os.PathLike) -> Path:
    """HubError unless model_dir holds a config and weights."""
    model_dir = Path(model_dir)
    missing = [name for name in ("config.json", "model.safetensors") if not (model_dir / name).exists()]
    if missing:
        raise HubError(f"{model_dir} is not a model dir (missing {', '.join(missing)})")
    return model_dir


def push_model_dir(
    model_dir: str | os.PathLike, repo_id: str, private: bool = False, commit_message: str | None = None
) -> str:
    """Upload a model dir (weights, config, latent map, card, pictures) to the Hub; returns the commit URL."""
    model_dir = _check_model_dir(model_dir)
    if get_token() is None:
        raise HubError("no Hugging Face token: run `hf auth login` or set HF_TOKEN, then push again")
    files = sorted({path for pattern in MODEL_FILES for path in model_dir.glob(pattern) if path.is_file()})
    operations = [
        CommitOperationAdd(path.relative_to(model_dir).as_posix(), _card_for(repo_id, path) if path.name == "README.md" else str(path))
        for path in files
    ]
    api = HfApi()
    try:
        api.create_repo(repo_id, private=private, exist_ok=True)
        commit = api.create_commit(repo_id, operations=operations, commit_message=commit_message or "Upload vaegan model")
    except Exception as error:  # noqa: BLE001 - HTTP, offline and auth failures all end here
        raise HubError(f"push to {repo_id} failed ({type(error).__name__}: {_first_line(error)}); {model_dir} is unchanged") from error
    return str(getattr(commit, "commit_url", commit))


def _card_for(repo_id: str, path: Path) -> bytes:
    """The model card as uploaded: its usage snippets name the repo it lives in."""
    return path.read_text().replace("REPO_ID", repo_id).encode()


def load_model(source: str) -> tuple[VAEGAN, LatentMap | None]:
    """Load model + latent map from a local model dir or a Hub repo id (safetensors only, strict)."""
    path = Path(source).expanduser()
    looks_like_path = source.startswith(("/", ".", "~")) or source.count("/") > 1 or "\\" in source
    if looks_like_path and not path.is_dir():
        raise HubError(f"{source}: no such model dir (expected a folder with config.json and model.safetensors, or a Hub repo id USER/NAME)")
    if path.is_dir() and not (path / "config.json").is_file():
        raise HubError(f"{source}: not a model dir (no config.json); train.py writes one to RUN/model")
    source = str(path) if path.is_dir() else source
    try:
        model = VAEGAN.from_pretrained(source, strict=True)
    except (OfflineModeIsEnabled, LocalEntryNotFoundError) as error:
        raise HubError(f"{source}: not a local model dir, and not in the Hugging Face cache while offline ({_first_line(error)})") from error
    except RepositoryNotFoundError as error:
        raise HubError(f"{source}: no such local model dir or Hub repo") from error
    except HfHubHTTPError as error:
        raise HubError(f"{source}: download failed ({_first_line(error)})") from error
    except (OSError, ValueError, SafetensorError) as error:  # SafetensorError: a damaged or foreign weights file
        raise HubError(f"{source}: could not load the model ({type(error).__name__}: {_first_line(error)})") from error
    model.eval()
    try:
        map_path = Path(source) / MAP_FILENAME if Path(source).is_dir() else Path(hf_hub_download(source, MAP_FILENAME))
        latent_map = LatentMap.load(map_path) if map_path.exists() else None
    except Exception as error:  # noqa: BLE001 - a model without a usable map still loads
        logger.warning("%s: no usable latent map (%s)", source, _first_line(error))
        latent_map = None
    if latent_map is not None and latent_map.mu.shape[1] != model.config.latent_dim:
        logger.warning("%s: latent map does not match the model's latent_dim; ignoring it", source)
        latent_map = None
    return model, latent_map


def bundle_model_dir(model_dir: str | os.PathLike, out_dir: str | os.PathLike) -> Path:
    """Copy a model dir into a small bundle (as assets/demo-model): fp16 weights and map, no pictures of real eyes."""
    model_dir, out_dir = _check_model_dir(model_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "config.json").write_bytes((model_dir / "config.json").read_bytes())
    weights = load_file(model_dir / "model.safetensors")
    save_file({name: value.half() for name, value in weights.items()}, out_dir / "model.safetensors")  # loads back into fp32
    latent_map = LatentMap.load(model_dir)
    latent_map.mu = latent_map.mu.astype(np.float16)
    latent_map.save(out_dir)
    metrics = json.loads((model_dir / "metrics.json").read_text()) if (model_dir / "metrics.json").exists() else {}
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    for picture in ("samples", "latent_map"):  # reconstructions and the interpolation start from real eyes: left out
        if (model_dir / "images" / f"{picture}.png").exists():
            (out_dir / "images").mkdir(exist_ok=True)
            (out_dir / "images" / f"{picture}.png").write_bytes((model_dir / "images" / f"{picture}.png").read_bytes())
    return out_dir


def _first_line(error: BaseException) -> str:
    return (str(error).strip().splitlines() or [type(error).__name__])[0]


def main(argv: list[str] | None = None) -> int:
    """python -m vaegan.hub push --model DIR --repo-id USER/NAME [--private] [--commit-message MSG]."""
    parser = argparse.ArgumentParser(prog="python -m vaegan.hub", description="Publish a vaegan model dir to the Hub")
    commands = parser.add_subparsers(dest="command", required=True)
    push = commands.add_parser("push", help="upload a model dir")
    push.add_argument("--model", required=True, help="model dir written by train.py (RUN/model)")
    push.add_argument("--repo-id", required=True)
    push.add_argument("--private", action="store_true")
    push.add_argument("--commit-message", default=None)
    bundle = commands.add_parser("bundle", help="copy a model dir into a small bundle (fp16), as assets/demo-model")
    bundle.add_argument("--model", required=True)
    bundle.add_argument("--out", required=True)
    bundle.add_argument("--data", default=None, help="what the model was trained on, for the bundle's model card")
    bundle.add_argument("--training-command", default=None, help="the training command, for the bundle's model card")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        if args.command == "bundle":
            out = bundle_model_dir(args.model, args.out)
            metrics = json.loads((out / "metrics.json").read_text())
            write_model_card(out, {"data_dir": args.data, "command": args.training_command or "python train.py"}, metrics)
            print(out)
        else:
            print(push_model_dir(args.model, args.repo_id, private=args.private, commit_message=args.commit_message))
    except HubError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
