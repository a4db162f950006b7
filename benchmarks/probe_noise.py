"""Is one model's linear probe on mu worse than another's, or is the difference noise? Three readings and a test.

    python benchmarks/probe_noise.py --data-dir ../shared/data --model VAE_DIR --model VAEGAN_DIR ... [--cache-dir DIR]

For each model, on the held-out eyes (val + test):
- `card probe`: the model card's probe (`metrics.make_probe`: standardised logistic regression fitted on the train
  split's mu), as errors;
- `train fit`: the same probe's errors on the train eyes it was fitted on;
- `unit 0`: the sign of latent unit 0 alone, the reading the label term trains (on the train and held-out eyes);
- `held-out CV`: the same probe fitted and scored by 5-fold cross-validation on the held-out mu alone, so that how
  the encoder fits the train split's labels does not enter;
- against the first model: the held-out eyes only one of the two probes gets wrong, and the exact McNemar test
  (two-sided binomial on those discordant eyes). Put the plain VAE first.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import git_commit, machine  # noqa: E402
from vaegan.data import load_dataset  # noqa: E402
from vaegan.evaluate import encode_images, select_split  # noqa: E402
from vaegan.hub import load_model  # noqa: E402
from vaegan.metrics import make_probe  # noqa: E402


def mcnemar_p(wrong_a: np.ndarray, wrong_b: np.ndarray) -> tuple[int, int, float]:
    """Eyes only A gets wrong, only B gets wrong, and the exact two-sided McNemar p-value."""
    from scipy.stats import binomtest

    only_a, only_b = int((wrong_a & ~wrong_b).sum()), int((wrong_b & ~wrong_a).sum())
    return only_a, only_b, binomtest(only_a, only_a + only_b, 0.5).pvalue if only_a + only_b else 1.0


def probe_readings(model: torch.nn.Module, train, test) -> dict[str, np.ndarray | int]:
    """The held-out probe's per-eye errors and the counts the module docstring lists."""
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    mu_train, mu_test = encode_images(model, train.images), encode_images(model, test.images)
    y_train, y_test = train.labels.numpy(), test.labels.numpy()
    probe = make_probe().fit(mu_train, y_train)
    folds = StratifiedKFold(5, shuffle=True, random_state=0)
    return {
        "wrong": probe.predict(mu_test) != y_test,
        "train_fit": int((probe.predict(mu_train) != y_train).sum()),
        "unit0_train": int(((mu_train[:, 0] > 0) != y_train).sum()),
        "unit0_test": int(((mu_test[:, 0] > 0) != y_test).sum()),
        "cv": int((cross_val_predict(make_probe(), mu_test, y_test, cv=folds) != y_test).sum()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="model dir or Hub repo id; repeat it (the first is the reference)")
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--cache-dir", default=None)
    args = parser.parse_args(argv)
    models = [load_model(name)[0].float().eval() for name in args.model]
    config = models[0].config
    data = load_dataset(args.data_dir, image_size=config.image_size, channels=config.channels, cache_dir=args.cache_dir)
    train, test = data.subset("train"), select_split(data, "val+test")
    print(f"at {git_commit()} on {machine()}: probes fitted on {len(train)} train eyes, scored on {len(test)} held-out eyes (errors)")
    print("| model | card probe (right) | train fit | unit 0: train / held-out | held-out CV | only this / only the first wrong | McNemar p |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    reference = None
    with torch.no_grad():
        for name, model in zip(args.model, models):
            r = probe_readings(model, train, test)
            wrong = r["wrong"]
            versus = "| - | -" if reference is None else "| {} / {} | {:.2f}".format(*mcnemar_p(wrong, reference))
            reference = wrong if reference is None else reference
            print(f"| {name} | {wrong.sum()} ({len(wrong) - wrong.sum()}) | {r['train_fit']} | {r['unit0_train']} / {r['unit0_test']} | "
                  f"{r['cv']} {versus} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
