"""Tests of vaegan.example_eyes: the drawn crops offered as examples on the page."""

from __future__ import annotations

import numpy as np
from PIL import Image

from vaegan.example_eyes import draw_example_eye, write_examples


def test_drawn_examples_are_eyes_the_right_way_round():
    open_eye, closed_eye = np.asarray(draw_example_eye(True)), np.asarray(draw_example_eye(False))
    assert open_eye.shape == closed_eye.shape == (128, 128)
    assert open_eye.min() < 40 and closed_eye.min() > 20  # only the open eye has a dark pupil
    assert (open_eye > 195).mean() > 0.02  # and white sclera


def test_write_examples_writes_two_open_and_two_closed_distinct_crops(tmp_path):
    paths = write_examples(tmp_path)
    names = sorted(p.rsplit("/", 1)[1] for p in paths)
    assert names == ["example-closed-1.png", "example-closed-2.png", "example-open-1.png", "example-open-2.png"]
    pictures = [np.asarray(Image.open(path)) for path in paths]
    assert all(picture.shape == (128, 128) for picture in pictures)
    assert len({picture.tobytes() for picture in pictures}) == 4  # the variants differ
