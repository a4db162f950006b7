"""benchmarks/discriminator_speed.py: a fresh discriminator learns to tell an untrained model's samples from drawn eyes."""

from __future__ import annotations

import re

from benchmarks.discriminator_speed import main
from conftest import tiny_model


def test_a_fresh_group_norm_discriminator_tells_an_untrained_models_samples_from_eyes(eye_folder, tmp_path, capsys):
    tiny_model().save_pretrained(tmp_path / "model")  # its samples are near-flat grey: easy to tell from the drawn eyes
    assert main(["--model", str(tmp_path / "model"), "--data-dir", str(eye_folder), "--norm", "group", "--steps", "60"]) == 0
    out = capsys.readouterr().out
    assert "a fresh 'group' discriminator, lr 0.0002" in out
    accuracy = [float(a) for a in re.findall(r"step 60: held-out accuracy ([0-9.]+)", out)]
    assert len(accuracy) == 1 and accuracy[0] >= 0.9
