"""benchmarks/probe_noise.py: the linear probe's errors read three ways, and the McNemar test between two models."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.probe_noise import main, mcnemar_p
from conftest import tiny_model
from vaegan.data import load_dataset
from vaegan.evaluate import evaluate
from vaegan.eye_features import load_feature_network


def test_mcnemar_counts_only_the_discordant_eyes():
    a = np.array([True, True, True, False, True, False])
    b = np.array([False, False, False, False, True, False])
    assert mcnemar_p(a, b) == (3, 0, pytest.approx(0.25))  # 2 * 0.5 ** 3; the eye both get wrong does not count
    assert mcnemar_p(a, a) == (0, 0, 1.0)
    assert mcnemar_p(np.ones(10, bool), np.zeros(10, bool))[2] == pytest.approx(2 / 1024)


def test_the_first_column_is_the_model_cards_probe_and_a_model_matches_itself(eye_folder, tmp_path, capsys):
    model = tiny_model()
    model.save_pretrained(tmp_path / "model")
    name = str(tmp_path / "model")
    assert main(["--model", name, "--model", name, "--data-dir", str(eye_folder)]) == 0
    rows = [line.split(" | ") for line in capsys.readouterr().out.splitlines() if line.startswith(f"| {name} ")]
    assert len(rows) == 2
    card = evaluate(model, load_dataset(eye_folder, image_size=64, channels=1), load_feature_network(), split="val+test")
    errors = int(rows[0][1].split()[0])
    assert errors == round((1 - card["probe_accuracy"]) * 14)  # 14 held-out eyes in the fixture
    assert rows[0][5:] == ["-", "- |"]
    assert rows[1][1:5] == rows[0][1:5]
    assert rows[1][5:] == ["0 / 0", "1.00 |"]
