"""The Hugging Face Hub: push a model dir, load a model + latent map from a dir or repo, bundle a small copy.

The model card's text is written by `vaegan.card`, its pictures by `vaegan.pictures`; nothing
here imports torchvision, so the app's start-up (which loads through `load_model`) stays light.

    python -m vaegan.hub push --model RUN/model --repo-id USER/NAME [--private] [--commit-message MSG]
    python -m vaegan.hub bundle --model RUN/model --out assets/demo-model [--data DIR] [--training-command CMD]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
from pathlib import Path

import numpy as np
from huggingface_hub import CommitOperationAdd, HfApi, get_token, hf_hub_download
from huggingface_hub.errors import (
    HfHubHTTPError,
    LocalEntryNotFoundError,
    OfflineModeIsEnabled,
    RepositoryNotFoundError,
)
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from vaegan import first_line
from vaegan.latent_map import FILENAME as MAP_FILENAME
from vaegan.latent_map import LatentMap
from vaegan.networks import DISCRIMINATOR_FILE, VAEGAN

logger = logging.getLogger(__name__)

MODEL_FILES = ["config.json", "model.safetensors", DISCRIMINATOR_FILE, MAP_FILENAME, "README.md", "metrics.json", "images/*.png"]


class HubError(Exception):
    """A Hub operation failed (no token, offline, rejected upload, missing repo)."""


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
        raise HubError(f"push to {repo_id} failed ({type(error).__name__}: {first_line(error)}); {model_dir} is unchanged") from error
    return str(getattr(commit, "commit_url", commit))


def _card_for(repo_id: str, path: Path) -> bytes:
    """The model card as uploaded: its usage snippets name the repo it lives in."""
    return path.read_text().replace("REPO_ID", repo_id).encode()


def _hub_unreachable(repo_id: str) -> str | None:
    """One Hub call before any download: a missing repo fails at once (a 404, never retried, no page of warnings).

    Returns why, when the Hub can't be reached (offline mode, no route, a timeout): the caller then loads
    from the local Hugging Face cache only, instead of letting every file download retry with backoff.
    """
    try:
        HfApi().model_info(repo_id, timeout=10)
    except RepositoryNotFoundError as error:  # also a gated or private repo the token can't see
        raise HubError(f"{repo_id}: no such local model dir or Hub repo (or a private one your token can't read)") from error
    except HfHubHTTPError as error:
        raise HubError(f"{repo_id}: the Hub answered {first_line(error)}") from error
    except OfflineModeIsEnabled:
        return "offline mode (HF_HUB_OFFLINE)"
    except Exception as error:  # noqa: BLE001 - connection / timeout errors, whose httpx flavour varies by huggingface_hub version
        return f"can't reach the Hugging Face Hub: {first_line(error)}"
    return None


def load_model(source: str) -> tuple[VAEGAN, LatentMap | None]:
    """Load model + latent map from a local model dir or a Hub repo id (safetensors only, strict)."""
    path = Path(source).expanduser()
    looks_like_path = source.startswith(("/", ".", "~")) or source.count("/") > 1 or "\\" in source
    if looks_like_path and not path.is_dir():
        raise HubError(f"{source}: no such model dir (expected a folder with config.json and model.safetensors, or a Hub repo id USER/NAME)")
    if path.is_dir() and not (path / "config.json").is_file():
        raise HubError(f"{source}: not a model dir (no config.json); train.py writes one to RUN/model")
    local = path.is_dir()
    source = str(path) if local else source
    unreachable = None if local else _hub_unreachable(source)
    cache_only = unreachable is not None
    try:
        model = VAEGAN.from_pretrained(source, strict=True, local_files_only=cache_only)
    except (OfflineModeIsEnabled, LocalEntryNotFoundError) as error:
        why = unreachable or first_line(error)
        raise HubError(f"{source}: not a local model dir, and not in the Hugging Face cache while offline ({why})") from error
    except RepositoryNotFoundError as error:
        raise HubError(f"{source}: no such local model dir or Hub repo") from error
    except HfHubHTTPError as error:
        raise HubError(f"{source}: download failed ({first_line(error)})") from error
    except (OSError, ValueError, SafetensorError) as error:  # SafetensorError: a damaged or foreign weights file
        raise HubError(f"{source}: could not load the model ({type(error).__name__}: {first_line(error)})") from error
    model.eval()
    if cache_only:
        logger.info("%s loaded from the local Hugging Face cache (%s)", source, unreachable)
    try:
        map_path = Path(source) / MAP_FILENAME if local else Path(hf_hub_download(source, MAP_FILENAME, local_files_only=cache_only))
        latent_map = LatentMap.load(map_path) if map_path.exists() else None
    except Exception as error:  # noqa: BLE001 - a model without a usable map still loads
        logger.warning("%s: no usable latent map (%s)", source, first_line(error))
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
    for name in ("model.safetensors", DISCRIMINATOR_FILE):  # both load back into fp32
        if (model_dir / name).exists():
            save_file({key: value.half() for key, value in load_file(model_dir / name).items()}, out_dir / name)
        else:  # a plain VAE's bundle written over a VAE-GAN's keeps no D
            (out_dir / name).unlink(missing_ok=True)
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


def main(argv: list[str] | None = None) -> int:
    """python -m vaegan.hub push|bundle ...: returns the exit code; every message goes through logging."""
    from vaegan.card import write_model_card

    parser = argparse.ArgumentParser(prog="python -m vaegan.hub", description="Publish a vaegan model dir to the Hub, or bundle a small copy of it")
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
            logger.info("bundle written to %s", out)
        else:
            logger.info("published %s", push_model_dir(args.model, args.repo_id, private=args.private, commit_message=args.commit_message))
    except HubError as error:
        logger.error("%s", error)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
