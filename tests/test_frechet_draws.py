"""benchmarks/frechet_draws.py: the prior samples' Frechet distance over several draws of z."""

from __future__ import annotations

import pytest

from benchmarks.frechet_draws import main
from conftest import tiny_model
from vaegan.data import load_dataset
from vaegan.evaluate import evaluate
from vaegan.eye_features import load_feature_network


def test_draw_0_is_the_model_cards_distance_and_the_other_draws_differ(eye_folder, tmp_path, capsys):
    model = tiny_model()
    model.save_pretrained(tmp_path / "model")
    name = str(tmp_path / "model")
    assert main(["--model", name, "--model", name, "--data-dir", str(eye_folder), "--draws", "3"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith(name + ":")]
    assert len(lines) == 2
    draws = [float(d) for d in lines[0].removeprefix(name + ":").split(";")[0].split()]
    card = evaluate(model, load_dataset(eye_folder, image_size=64, channels=1), load_feature_network(), split="val+test")
    assert draws[0] == pytest.approx(card["frechet_distance"], abs=1e-3)
    assert len(set(draws)) == 3  # each draw is a new set of z
    assert lines[1].endswith("1.000x the first model's mean")  # the same model twice: the same draws


@pytest.mark.parametrize(("flag", "value"), [("--draws", "1"), ("--num-samples", "0")])
def test_too_few_draws_or_samples_are_refused(eye_folder, tmp_path, capsys, flag, value):
    tiny_model().save_pretrained(tmp_path / "model")
    with pytest.raises(SystemExit):
        main(["--model", str(tmp_path / "model"), "--data-dir", str(eye_folder), flag, value])
    assert f"{flag} must be at least 2" in capsys.readouterr().err
