"""Quality benchmark: the plain VAE and the VAE-GAN, same data, epochs and budget, same eye-feature CNN.

    python benchmarks/quality.py [--data-dir ../shared/data] [--epochs 12] [--out-dir runs/quality] [--bundled assets/demo-model]

Trains both with train.py (in-process), evaluates both with vaegan.evaluate (and the bundled
model, when --bundled names it), writes the "## Quality" section of BENCHMARKS.md (replaced
if present, the rest kept) and pictures of the models' held-out reconstructions, prior samples,
open <-> closed edits and a decoded eye at the page's 256 px to benchmarks/results/ (model
outputs only: real eyes are not drawn).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shlex
import sys
import time
from pathlib import Path

import torch
from PIL import Image, ImageDraw
from torchvision.utils import make_grid

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import train  # noqa: E402
from benchmarks.common import git_commit, machine, write_section  # noqa: E402
from vaegan.card import source_label  # noqa: E402
from vaegan.data import EyeData, load_dataset, to_float, to_uint8  # noqa: E402
from vaegan.evaluate import evaluate, select_split  # noqa: E402
from vaegan.eye_features import DEFAULT_FEATURES, EyeFeatureNet, feature_file_info, load_feature_network  # noqa: E402
from vaegan.latent_map import LatentMap, fit_mixture  # noqa: E402
from vaegan.networks import VAEGAN  # noqa: E402

logger = logging.getLogger("quality")

MODELS = ("vae", "vaegan")
ROWS = [  # (key, label, format)
    ("recon_mse", "reconstruction MSE ([0, 1] pixels)", "{:.5f}"),
    ("recon_psnr", "reconstruction PSNR (dB)", "{:.2f}"),
    ("recon_ssim", "reconstruction SSIM", "{:.3f}"),
    ("recon_sharpness", "fine detail of reconstructions (Laplacian variance / real's)", "{:.3f}"),
    ("sample_sharpness", "fine detail of prior samples (Laplacian variance / real's)", "{:.3f}"),
    ("recon_frechet_distance", "Frechet distance, reconstructions vs real (eye CNN)", "{:.3f}"),
    ("frechet_distance", "Frechet distance, samples vs real (eye CNN)", "{:.3f}"),
    ("kid", "KID, samples vs real (eye CNN)", "{:.4f}"),
    ("mixture_frechet_distance", "Frechet distance, samples of the latent mixture vs real (eye CNN)", "{:.3f}"),
    ("mixture_sample_sharpness", "fine detail of the latent mixture's samples (Laplacian variance / real's)", "{:.3f}"),
    ("probe_accuracy", "linear probe accuracy on mu", "{:.3f}"),
    ("probe_balanced_accuracy", "linear probe balanced accuracy", "{:.3f}"),
    ("knn_accuracy", "kNN (k=10) accuracy on the 2-D map", "{:.3f}"),
    ("active_units", "active units (Var mu > 0.01)", "{:.0f}"),
    ("label_preservation", "label preservation of reconstructions", "{:.3f}"),
    ("edit_flip", "open <-> closed edit read as the other state (eye CNN)", "{:.3f}"),
    ("feature_cnn_accuracy", "eye CNN accuracy on the real eyes", "{:.3f}"),
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--max-steps", type=int, default=None, help="cap on optimiser steps per model (tiny runs)")
    parser.add_argument("--out-dir", default="runs/quality", help="training runs go to OUT_DIR/vae and OUT_DIR/vaegan")
    parser.add_argument("--features", default=str(DEFAULT_FEATURES))
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--vae-args", default="", help="extra train.py flags for the VAE, one string")
    parser.add_argument("--vaegan-args", default="", help="extra train.py flags for the VAE-GAN, one string")
    parser.add_argument("--skip-training", action="store_true", help="evaluate the runs already in OUT_DIR")
    parser.add_argument("--bundled", default=None, help="also score this model dir (the bundled demo model) in a third column")
    parser.add_argument("--results-dir", default=str(ROOT / "benchmarks" / "results"))
    return parser.parse_args(argv)


def train_model(model_type: str, args: argparse.Namespace) -> float:
    """Train one model with train.py; returns wall-clock seconds."""
    argv = ["--data-dir", args.data_dir, "--epochs", str(args.epochs), "--out-dir", str(Path(args.out_dir) / model_type)]
    argv += ["--model-type", model_type, "--sample-every", str(max(1, args.epochs))]
    if args.max_steps:
        argv += ["--max-steps", str(args.max_steps)]
    if args.cache_dir:
        argv += ["--cache-dir", args.cache_dir]
    argv += shlex.split(getattr(args, f"{model_type}_args"))
    logger.info("training %s: python train.py %s", model_type, shlex.join(argv))
    started = time.perf_counter()
    code = train.main(argv)
    if code != 0:
        raise SystemExit(f"training the {model_type} failed (exit code {code})")
    return time.perf_counter() - started


def picture(models: dict[str, VAEGAN], maps: dict[str, LatentMap], held_out: EyeData, path: Path, n: int = 16, seed: int = 0) -> Path:
    """Grid: for each model (columns) its reconstructions of the same held-out eyes, samples from the same z, and draws from its latent mixture."""
    generator = torch.Generator().manual_seed(seed)
    open_index = (held_out.labels == 1).nonzero().squeeze(1)
    closed_index = (held_out.labels == 0).nonzero().squeeze(1)
    pick = lambda index: index[torch.randperm(len(index), generator=generator)[: n // 2]]
    x = to_float(held_out.images[torch.cat([pick(open_index), pick(closed_index)])])  # top row open, bottom closed
    z = torch.randn(n, next(iter(models.values())).config.latent_dim, generator=generator)
    panels = {}
    with torch.no_grad():
        for name, model in models.items():
            model.eval()
            panels[(name, "reconstructions (top open, bottom closed)")] = model.decode(model.encode(x)[0])
            panels[(name, "prior samples (same z)")] = model.decode(z)
            mixture_z = torch.as_tensor(maps[name].sample_mixture(n, torch.Generator().manual_seed(seed)))
            panels[(name, "samples of its latent mixture (the page's)")] = model.decode(mixture_z)
    tiles = {key: Image.fromarray(make_grid(to_uint8(value), nrow=n // 2, padding=2, pad_value=255).permute(1, 2, 0).numpy()) for key, value in panels.items()}
    tile_w, tile_h = next(iter(tiles.values())).size
    label_h, gap = 16, 12
    names = list(models)
    kinds = list(dict.fromkeys(kind for _, kind in panels))
    canvas = Image.new("RGB", (len(names) * (tile_w + gap), len(kinds) * (tile_h + label_h + gap)), "white")
    draw = ImageDraw.Draw(canvas)
    for column, name in enumerate(names):
        for row, kind in enumerate(kinds):
            left, top = column * (tile_w + gap), row * (tile_h + label_h + gap)
            draw.text((left + 2, top + 2), f"{name.upper()}: {kind}", fill="black")
            canvas.paste(tiles[(name, kind)], (left, top + label_h))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


@torch.no_grad()
def edit_picture(models: dict[str, VAEGAN], maps: dict[str, LatentMap], held_out: EyeData, path: Path, seed: int = 0) -> Path:
    """Rows of held-out eyes moved along each model's closed -> open direction from -2 to +2 (as the page's slider)."""
    generator = torch.Generator().manual_seed(seed + 1)
    picks = [index[torch.randperm(len(index), generator=generator)[:3]] for index in ((held_out.labels == 1).nonzero().squeeze(1), (held_out.labels == 0).nonzero().squeeze(1))]
    x = to_float(held_out.images[torch.cat(picks)])  # 3 open eyes, then 3 closed
    amounts = torch.linspace(-2, 2, 9)
    panels = []
    for name, model in models.items():
        mu = model.eval().encode(x)[0]
        direction = torch.as_tensor(maps[name].open_direction)
        z = mu[:, None, :] + amounts[None, :, None] * direction  # (6, 9, Z)
        panels.append((name, model.decode(z.flatten(0, 1))))
    tiles = [Image.fromarray(make_grid(to_uint8(images), nrow=len(amounts), padding=2, pad_value=255).permute(1, 2, 0).numpy()) for _, images in panels]
    label_h, gap = 16, 12
    canvas = Image.new("RGB", (sum(t.width + gap for t in tiles), tiles[0].height + label_h), "white")
    draw = ImageDraw.Draw(canvas)
    left = 0
    for (name, _), tile in zip(panels, tiles):
        draw.text((left + 2, 2), f"{name.upper()}: slider -2 (closed) ... +2 (open)", fill="black")
        canvas.paste(tile, (left, label_h))
        left += tile.width + gap
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


@torch.no_grad()
def page_eye_picture(models: dict[str, VAEGAN], held_out: EyeData, path: Path, index: int = 0) -> Path:
    """One held-out eye decoded by each model and shown as the page shows it (256 px, bicubic)."""
    from vaegan.ui import to_picture

    x = to_float(held_out.images[index : index + 1])
    pictures = [to_picture(to_uint8(model.eval().decode(model.encode(x)[0]))[0].permute(1, 2, 0).numpy()) for model in models.values()]
    canvas = Image.new("RGB", (len(pictures) * 268, 256 + 16), "white")
    draw = ImageDraw.Draw(canvas)
    for i, (name, picture) in enumerate(zip(models, pictures)):
        draw.text((i * 268 + 2, 2), f"{name.upper()}: the page's decoded eye", fill="black")
        canvas.paste(picture.convert("RGB"), (i * 268, 16))
    path.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(path)
    return path


def targets(results: dict[str, dict[str, float]]) -> list[tuple[str, bool]]:
    """The quality targets of the sharp-eyes issue, each with whether it is met (VAE-GAN and, when scored, the bundled model)."""
    vae = results["vae"]
    checks = [(f"VAE recon SSIM >= 0.80 ({vae['recon_ssim']:.3f})", vae["recon_ssim"] >= 0.80)]
    for name in [key for key in ("vaegan", "bundled") if key in results]:
        m, label = results[name], "VAE-GAN" if name == "vaegan" else "bundled"
        checks += [
            (f"{label} recon sharpness >= 0.8 ({m['recon_sharpness']:.3f})", m["recon_sharpness"] >= 0.8),
            (f"{label} sample sharpness in [0.8, 1.25] ({m['sample_sharpness']:.3f})", 0.8 <= m["sample_sharpness"] <= 1.25),
            (f"{label} samples' Frechet distance <= 0.5 x the VAE's ({m['frechet_distance']:.3f} vs {0.5 * vae['frechet_distance']:.3f}"
             + (", a VAE of this run's budget, not the bundle's; against one trained as long, see \"The plain VAE at the bundled model's budget\")" if name == "bundled" else ")"),
             m["frechet_distance"] <= 0.5 * vae["frechet_distance"]),
            (f"{label} reconstructions' Frechet distance < the VAE's ({m['recon_frechet_distance']:.3f} vs {vae['recon_frechet_distance']:.3f})",
             m["recon_frechet_distance"] < vae["recon_frechet_distance"]),
            (f"{label} probe >= 0.90 and >= the VAE's ({m['probe_accuracy']:.3f} vs {vae['probe_accuracy']:.3f})",
             m["probe_accuracy"] >= 0.90 and m["probe_accuracy"] >= vae["probe_accuracy"]),
            (f"{label} kNN on the 2-D map >= 0.85 ({m['knn_accuracy']:.3f})", m["knn_accuracy"] >= 0.85),
            (f"{label} edit flip >= 0.8 ({m['edit_flip']:.3f})", m["edit_flip"] >= 0.8),
            (f"{label} recon SSIM >= 0.80 ({m['recon_ssim']:.3f})", m["recon_ssim"] >= 0.80),
            (f"{label} label preservation >= 0.95 ({m['label_preservation']:.3f})", m["label_preservation"] >= 0.95),
            (f"{label} active units >= half the latent dims ({m['active_units']:.0f} / {m['latent_dim']:.0f})",
             m["active_units"] >= m["latent_dim"] / 2),
        ]
    return checks


def table(results: dict[str, dict[str, float]]) -> str:
    names = [name for name in ("vae", "vaegan", "bundled") if name in results]
    titles = {"vae": "VAE", "vaegan": "VAE-GAN", "bundled": "bundled model"}
    lines = ["| metric | " + " | ".join(titles[name] for name in names) + " |", "|---|" + "---:|" * len(names)]
    by_source = [(key, label, "{:.3f}") for key in results[names[0]] if (label := source_label(key))]  # SSIM, sharpness
    for key, label, form in ROWS[:4] + by_source + ROWS[4:]:
        lines.append(f"| {label} | " + " | ".join(form.format(results[name][key]) for name in names) + " |")
    return "\n".join(lines)


def section(args, results, extra_split, seconds, features: EyeFeatureNet, grid: Path, command: str) -> str:
    """The body of the "## Quality" section of BENCHMARKS.md."""
    both_n = int(results["val+test"]["vae"]["eval_images"])
    feature_info = feature_file_info(args.features)
    if None in (seconds["vae"], seconds["vaegan"]):
        training_time = "; their training time was not recorded."
    else:
        training_time = (f"; training took {seconds['vae'] / 60:.1f} min (VAE) and {seconds['vaegan'] / 60:.1f} min (VAE-GAN)"
                         + (", as recorded when they were trained, not timed by this run." if args.skip_training else "."))
    lines = [
        f"Plain VAE vs VAE-GAN at equal budget, measured {time.strftime('%Y-%m-%d')} at commit {git_commit()} on {machine()} "
        "(other jobs were sharing the CPU, so times are indicative).",
        "",
        "```",
        command,
        "```",
        "",
        f"- data: `{Path(args.data_dir).name}` ({args.data_dir}); both models: {args.epochs} epochs"
        + (f", at most {args.max_steps} steps" if args.max_steps else "")
        + training_time,
        f"- extra flags: VAE `{args.vae_args or '-'}`, VAE-GAN `{args.vaegan_args or '-'}` (else train.py defaults)"
        + ("; the models of an earlier run of this command, re-evaluated (`--skip-training`)." if args.skip_training else "."),
        f"- scored on val + test ({both_n} images never trained on, both sources in the folder: on `../shared/data` the test split "
        "is CEW only, the drowsiness crops have a val split only), prior samples as many; "
        f"probe fitted on the train split; 2-D kNN on each model's own latent map (held-out eyes placed as the app places an upload, "
        f"map points equal to held-out latents left out).",
        f"- eye-feature CNN: `{Path(args.features).name}`, held-out accuracy {feature_info.get('held_out_accuracy', 'n/a')}, "
        f"val accuracy {feature_info.get('val_accuracy', 'n/a')}. Frechet distance / KID are on its {features.num_features}-d pooled features, "
        "comparable only between runs that use the same feature file.",
        "",
        table(results["val+test"]),
        "",
        f"Same models scored on the test split alone ({int(results['held-out']['vae']['eval_images'])} images, `data.held_out()`):",
        "",
        table(results["held-out"]),
        "",
        "Targets (val + test):",
        "",
    ]
    lines += [f"- [{'x' if ok else ' '}] {text}" for text, ok in targets(results["val+test"])]
    lines += ["", f"![VAE vs VAE-GAN reconstructions and samples]({grid.relative_to(ROOT).as_posix()})", ""]
    lines += ["Held-out eyes moved along each model's closed -> open direction, -2 to +2 (the page's slider):", ""]
    lines += [f"![open / closed edits]({(grid.parent / 'quality_edits.png').relative_to(ROOT).as_posix()})", ""]
    lines += ["One held-out eye decoded by each model, at the page's 256 px:", ""]
    lines += [f"![the page's decoded eye]({(grid.parent / 'quality_page_eye.png').relative_to(ROOT).as_posix()})", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    args = parse_args(argv)
    command = "python benchmarks/quality.py " + shlex.join(a for a in (argv if argv is not None else sys.argv[1:]) if a != "--skip-training")
    features = load_feature_network(args.features)  # fail before training, not after
    seconds = {}
    for model_type in MODELS:
        previous = Path(args.out_dir) / model_type / "quality_eval.json"
        if not args.skip_training:
            seconds[model_type] = train_model(model_type, args)
        elif previous.exists():
            seconds[model_type] = json.loads(previous.read_text())["train_seconds"]
        else:  # runs made by train.py itself, not by this script: their time was not taken
            seconds[model_type] = None
    model_dirs = {name: Path(args.out_dir) / name / "model" for name in MODELS} | ({"bundled": Path(args.bundled)} if args.bundled else {})
    models = {name: VAEGAN.from_pretrained(directory, strict=True) for name, directory in model_dirs.items()}
    maps = {name: LatentMap.load(directory) for name, directory in model_dirs.items()}
    for name, latent_map in maps.items():  # a map made before maps had a mixture: the same fit, here
        if not latent_map.has_mixture:
            logger.info("fitting the latent mixture of %s's map (made before maps had one)", name)
            maps[name] = dataclasses.replace(latent_map, **fit_mixture(latent_map.mu))
    config = models["vae"].config
    data = load_dataset(args.data_dir, image_size=config.image_size, channels=config.channels, cache_dir=args.cache_dir)
    results: dict[str, dict[str, dict[str, float]]] = {"held-out": {}, "val+test": {}}
    for name, model in models.items():
        for split in results:
            results[split][name] = evaluate(model, data, features, maps[name], split=split)
        if name in MODELS:
            record = {"train_seconds": seconds[name], **{split: results[split][name] for split in results}}
            (Path(args.out_dir) / name / "quality_eval.json").write_text(json.dumps(record, indent=2) + "\n")
    held_out = select_split(data, "val+test")
    results_dir = Path(args.results_dir)
    grid = picture(models, maps, held_out, results_dir / "quality_vae_vs_vaegan.png")
    edit_picture(models, maps, held_out, results_dir / "quality_edits.png")
    page_eye_picture(models, held_out, results_dir / "quality_page_eye.png")
    text = section(args, results, "val+test", seconds, features, grid, command)
    write_section("Quality", text)
    print(text)
    return 0 if all(ok for _, ok in targets(results["val+test"])) else 2


if __name__ == "__main__":
    sys.exit(main())
