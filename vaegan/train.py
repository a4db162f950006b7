"""The train command: flags -> configs -> data -> Trainer.fit() -> pipeline.write_model_dir() -> optional push.

    vaegan-train --data-dir DIR --epochs N [--push-to-hub USER/NAME]     # or: python train.py ... in a checkout

Every TrainConfig / ModelConfig field is a flag of the same name, its help the field's comment.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import os
import re
import shlex
import sys
import time
import typing
from dataclasses import MISSING, fields
from pathlib import Path

from vaegan.config import ModelConfig, TrainConfig

logger = logging.getLogger("train")

HELP = {
    "data_dir": "folder of eye crops in open / closed class folders (default: download the Kaggle dataset)",
    "out_dir": "where checkpoint/, model/, samples/ and metrics.jsonl go (default runs/<timestamp>)",
    "resume": "continue from OUT_DIR/checkpoint (default OUT_DIR: the newest run under runs/)",
    "max_steps": "stop after this many optimiser steps",
    "map_size": "images encoded for the latent map",
    "device": "auto, cpu or cuda",
    "model_type": "vaegan, or vae for the plain-VAE baseline",
    "push_to_hub": "publish the model dir to this Hub repo after training (token: `hf auth login` or HF_TOKEN)",
}


def field_comments(config_class: type) -> dict[str, str]:
    """The comment after each field of a config dataclass (`name: type = default  # comment`), for --help."""
    pattern = re.compile(r"^\s+(\w+):[^#]*#\s*(.+)$")
    return {m.group(1): m.group(2) for m in map(pattern.match, inspect.getsource(config_class).splitlines()) if m}


def parse_args(argv: list[str] | None = None) -> tuple[TrainConfig, ModelConfig, argparse.Namespace]:
    """Flags named after the TrainConfig / ModelConfig fields, with the dataclass defaults and comments as help."""
    parser = argparse.ArgumentParser(description="Train a VAE-GAN on eye crops: a folder of open / closed crops, or the Kaggle dataset.")
    for config_class in (TrainConfig, ModelConfig):
        comments, types = field_comments(config_class), typing.get_type_hints(config_class)
        for field in fields(config_class):
            flags = ["--" + field.name.replace("_", "-")] + (["--model"] if field.name == "model_type" else [])
            default = field.default if field.default is not MISSING else None
            kind = next((t for t in typing.get_args(types[field.name]) if t is not type(None)), types[field.name])  # int | None -> int
            text = (HELP.get(field.name) or comments.get(field.name, "")).replace("%", "%%")
            if "default" not in text and kind is not bool:  # BooleanOptionalAction adds its own
                text = f"{text} (default: %(default)s)".strip()
            if kind is bool:
                parser.add_argument(*flags, action=argparse.BooleanOptionalAction, default=default, help=text)
            else:
                parser.add_argument(*flags, type=kind, default=default, help=text)
    parser.add_argument("--private", action="store_true", help="with --push-to-hub: create a private repo")
    parser.add_argument("--commit-message", default=None, help="with --push-to-hub: the Hub commit message")
    args = parser.parse_args(argv)
    values = vars(args)
    train_config = TrainConfig(**{f.name: values[f.name] for f in fields(TrainConfig)})
    model_config = ModelConfig(**{f.name: values[f.name] for f in fields(ModelConfig)})
    return train_config, model_config, args


def resolve_out_dir(config: TrainConfig) -> None:
    """Fill in out_dir: runs/<timestamp>, or for --resume the newest run that has a checkpoint."""
    if config.out_dir:
        return
    if config.resume:
        runs = sorted(Path("runs").glob("*/checkpoint/state.pt"))
        if not runs:
            raise SystemExit("--resume: no run with a checkpoint under runs/; pass --out-dir")
        config.out_dir = str(runs[-1].parent.parent)
    else:
        config.out_dir = str(Path("runs") / time.strftime("%Y%m%d-%H%M%S"))


def check_writable(out_dir: str) -> list[Path]:
    """Fail before training, not after the first epoch, when out_dir can't be written.

    Returns the folders it had to create (deepest first), so that a run which fails before training
    can take them away again: a failed run leaves no empty runs/<timestamp> behind.
    """
    path = Path(out_dir)
    created = [folder for folder in (path, *path.parents) if not folder.exists()]
    try:
        path.mkdir(parents=True, exist_ok=True)
        probe = path / f".write-test-{os.getpid()}"  # one per process under accelerate launch
        probe.write_bytes(b"\0" * 1024 * 1024)
        probe.unlink()
    except OSError as error:
        raise SystemExit(f"--out-dir {out_dir} is not writable: {error.strerror or error}") from error
    return created


def remove_empty(folders: list[Path]) -> None:
    """Remove the folders a failed run created, deepest first, as long as they are still empty."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:  # not empty (the run wrote something worth keeping) or already gone
            return


def main(argv: list[str] | None = None) -> int:
    """Run training; returns the process exit code."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    argv = sys.argv[1:] if argv is None else list(argv)
    train_config, model_config, args = parse_args(argv)
    import torch

    from vaegan.data import DataError, download_kaggle, load_dataset
    from vaegan.hub import HubError, push_model_dir
    from vaegan.networks import validate_config
    from vaegan.pipeline import write_model_dir
    from vaegan.trainer import Trainer, TrainingError, make_accelerator, validate_train_config

    created: list[Path] = []
    try:
        validate_config(model_config)
        validate_train_config(train_config)
        resolve_out_dir(train_config)
        created = check_writable(train_config.out_dir)
        accelerator = make_accelerator(train_config)
        with accelerator.main_process_first():  # under `accelerate launch`: one process downloads and caches, then the others read
            data_dir = train_config.data_dir or download_kaggle()
            data = load_dataset(
                data_dir,
                image_size=model_config.image_size,
                channels=model_config.channels,
                seed=train_config.seed,
                val_fraction=train_config.val_fraction,
                test_fraction=train_config.test_fraction,
                cache_dir=train_config.cache_dir,
                num_workers=train_config.num_workers,
            )
        # one seed for the process: model initialisation, then every step's noise, prior draws and flips (the checkpoint keeps its state)
        torch.manual_seed(train_config.seed)
        trainer = Trainer(train_config, model_config, data, accelerator)
        model = trainer.fit()
        model_dir = Path(train_config.out_dir) / "model"
        if accelerator.is_main_process:
            command = ["vaegan-train"] if Path(sys.argv[0]).name == "vaegan-train" else ["python", "train.py"]
            training = {"data_dir": train_config.data_dir, "command": shlex.join([*command, *argv]),
                        "images": len(data), "steps": trainer.step}
            write_model_dir(model, data, model_dir, map_size=train_config.map_size, seed=train_config.seed,
                            training=training, logged=trainer.last_record(), discriminator=trainer.discriminator_state())
        accelerator.wait_for_everyone()  # the other processes wait while the main one writes the model dir
        if not accelerator.is_main_process:  # under `accelerate launch`, the main process reports and pushes
            return 0
        logger.info("done: serve it with  python app.py --model %s", model_dir)
        if train_config.push_to_hub:
            url = push_model_dir(model_dir, train_config.push_to_hub, private=args.private, commit_message=args.commit_message)
            logger.info("published %s", url)
    except (DataError, TrainingError, HubError, ValueError) as error:
        logger.error("%s", error)
        remove_empty(created)
        return 1
    except KeyboardInterrupt:
        remove_empty(created)
        if Path(train_config.out_dir or ".").exists():
            logger.error("interrupted; continue with: python train.py --resume --out-dir %s ...", train_config.out_dir)
        else:
            logger.error("interrupted before training started; nothing was written")
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
