"""benchmarks/judges.py: the models' Frechet distances under three more feature networks."""

from __future__ import annotations

import pytest
import torch

from benchmarks.judges import main, upright_task
from conftest import tiny_model
from vaegan.data import load_dataset


def test_the_upright_task_is_each_training_eye_upright_and_upside_down(eye_folder):
    data = load_dataset(eye_folder, image_size=64, channels=1)
    train = data.subset("train")
    task = upright_task(data)
    assert len(task) == 2 * len(train) and len(task.subset("train")) == len(task)  # all of it is for training
    assert torch.equal(task.images[: len(train)], train.images)
    assert torch.equal(task.images[len(train):], torch.rot90(train.images, 2, (2, 3)))
    assert task.labels.tolist() == [1] * len(train) + [0] * len(train)  # the eye state is not what it learns


def test_the_upright_task_of_the_held_out_eyes_is_made_from_those_eyes_only(eye_folder):
    data = load_dataset(eye_folder, image_size=64, channels=1)
    held_out = data.subset("val", "test")
    task = upright_task(data, "val", "test")
    assert len(task) == 2 * len(held_out) and len(task.subset("train")) == len(task)
    assert torch.equal(task.images[len(held_out):], torch.rot90(held_out.images, 2, (2, 3)))


def test_every_judge_scores_every_model_against_the_first(eye_folder, tmp_path, capsys):
    first, second = tmp_path / "a", tmp_path / "b"
    tiny_model().save_pretrained(first)
    tiny_model(latent_dim=6).save_pretrained(second)
    args = ["--data-dir", str(eye_folder), "--draws", "2", "--epochs", "1"]
    assert main(["--model", str(first), "--model", str(second), "--model", str(first), *args]) == 0
    out = capsys.readouterr().out
    rows = [line.split(" | ") for line in out.splitlines() if line.startswith("| ") and not line.startswith("| judge")]
    assert [row[0].strip("| ") for row in rows] == [j for j in ("state", "state-1", "upright", "random") for _ in range(3)]
    for judge in range(4):
        reference, other, again = rows[3 * judge: 3 * judge + 3]
        assert reference[3] == reference[5] == "1.000"  # the first model over itself
        assert again[2:6] == reference[2:6]  # the same model again: the same distances
        assert other[2] != reference[2]  # another model: another distance
    assert "judge upright: held-out accuracy on its own task" in out


def test_no_draws_is_refused(eye_folder, tmp_path, capsys):
    tiny_model().save_pretrained(tmp_path / "model")
    with pytest.raises(SystemExit):
        main(["--model", str(tmp_path / "model"), "--data-dir", str(eye_folder), "--draws", "0"])
    assert "--draws must be at least 1" in capsys.readouterr().err


def test_an_unknown_judge_is_refused(eye_folder, tmp_path, capsys):
    tiny_model().save_pretrained(tmp_path / "model")
    with pytest.raises(SystemExit):
        main(["--model", str(tmp_path / "model"), "--data-dir", str(eye_folder), "--judges", "state,inception"])
    assert "--judges must name some of state, state-1, upright, random" in capsys.readouterr().err


def test_the_seed_moves_the_judges_made_here_and_only_those(eye_folder, tmp_path, capsys):
    tiny_model().save_pretrained(tmp_path / "model")
    rows = {}
    for seed in ("0", "5"):
        main(["--model", str(tmp_path / "model"), "--data-dir", str(eye_folder), "--draws", "1", "--judges", "state,random", "--seed", seed])
        rows[seed] = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("| state", "| random"))]
    assert rows["0"][0] == rows["5"][0]  # the card's file does not change
    assert rows["0"][1] != rows["5"][1]  # another random network
