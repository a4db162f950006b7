import logging
import os

import numpy as np
import pytest
import torch
from conftest import make_eye, make_layout, write_eyes
from PIL import Image

from vaegan import data
from vaegan.config import ModelConfig
from vaegan.data import DataError, class_of, discover, load_dataset


@pytest.mark.parametrize(
    "name, label",
    [
        ("open", 1), ("Open_Eyes", 1), ("openLeftEyes", 1), ("awake", 1), ("OpenEyes", 1),
        ("closed", 0), ("Closed", 0), ("closedLeftEyes", 0), ("closed_eye", 0), ("sleepy", 0), ("Close-Eyes", 0),
        ("faces", None), ("train", None), ("yawn", None),
    ],
)
def test_class_from_folder_name(name, label):
    assert class_of(name) == label


@pytest.mark.parametrize("layout", ["kaggle", "cew", "drowsy"])
def test_discover_finds_labels_and_splits(tmp_path, layout):
    root = make_layout(tmp_path, layout)
    items = discover(root)
    assert len(items) == sum(len(list(p.iterdir())) for p in root.rglob("*") if p.is_dir() and not any(c.is_dir() for c in p.iterdir()))
    for relative, label, split in items:
        folder = relative.split(os.sep)[-2].lower()
        assert label == (1 if ("open" in folder or "awake" in folder) else 0)
        first = relative.split(os.sep)[0].lower()
        expected_split = {"train": "train", "val": "val", "valid": "val", "test": "test"}.get(first)
        assert split == expected_split


def test_linked_folders_are_followed_once(tmp_path):
    # a dataset assembled from links, as people do to keep big folders on another disk: each linked folder's images
    # count, a folder linked twice counts once, and a link back up does not loop
    elsewhere = make_layout(tmp_path / "elsewhere", "cew")
    root = tmp_path / "data"
    write_eyes(root / "own" / "closed", is_open=False, count=3)
    write_eyes(root / "own" / "open", is_open=True, count=3)
    (root / "linked").symlink_to(elsewhere, target_is_directory=True)
    (root / "linked_again").symlink_to(elsewhere, target_is_directory=True)
    (root / "own" / "open" / "up").symlink_to(root, target_is_directory=True)
    items = discover(root)
    assert len(items) == 6 + 40
    assert sum(path.startswith("linked" + os.sep) for path, _, _ in items) == 40
    assert not any(path.startswith("linked_again") for path, _, _ in items)


def test_seeded_split_is_stratified_and_repeatable(tmp_path):
    root = make_layout(tmp_path, "cew")
    first = load_dataset(root, seed=3, val_fraction=0.2, test_fraction=0.2)
    again = load_dataset(root, seed=3, val_fraction=0.2, test_fraction=0.2)
    other = load_dataset(root, seed=4, val_fraction=0.2, test_fraction=0.2)
    assert torch.equal(first.splits, again.splits)
    assert not torch.equal(first.splits, other.splits)
    for split in ("train", "val", "test"):
        labels = first.subset(split).labels
        assert (labels == 0).sum() == (labels == 1).sum() > 0  # 20 closed / 20 open in, balanced out


def test_split_folders_are_kept(eye_folder):
    dataset = load_dataset(eye_folder)
    assert len(dataset.subset("train")) == 24 and len(dataset.subset("val")) == 8 and len(dataset.subset("test")) == 6
    assert dataset.held_out().paths == dataset.subset("test").paths
    assert all(path.startswith("test") for path in dataset.held_out().paths)


def test_load_dataset_shapes_and_cache(eye_folder, monkeypatch):
    dataset = load_dataset(eye_folder, image_size=32, channels=1)
    assert dataset.images.shape == (38, 1, 32, 32) and dataset.images.dtype == torch.uint8
    assert set(dataset.labels.tolist()) == {0, 1}
    cached = list((data.default_cache_dir()).glob("*.safetensors"))
    assert len(cached) == 1

    def must_not_decode(*args, **kwargs):
        raise AssertionError("decoded again although the cache is valid")

    monkeypatch.setattr(data, "_build", must_not_decode)
    again = load_dataset(eye_folder, image_size=32, channels=1)
    assert torch.equal(again.images, dataset.images) and again.paths == dataset.paths


def test_cache_is_rebuilt_when_the_source_changes(eye_folder):
    first = load_dataset(eye_folder, image_size=32)
    write_eyes(eye_folder / "train" / "open", True, 2, seed=99)
    second = load_dataset(eye_folder, image_size=32)
    assert len(second) == len(first) + 2
    rgb = load_dataset(eye_folder, image_size=32, channels=3)
    assert rgb.images.shape[1] == 3


def test_damaged_cache_is_rebuilt_not_used(eye_folder, caplog):
    first = load_dataset(eye_folder, image_size=32)
    cache_file = next(data.default_cache_dir().glob("*.safetensors"))
    cache_file.write_bytes(cache_file.read_bytes()[:100])  # killed while writing
    with caplog.at_level(logging.WARNING):
        again = load_dataset(eye_folder, image_size=32)
    assert "rebuilding" in caplog.text
    assert torch.equal(again.images, first.images)


def test_two_processes_building_one_cache_at_once_both_succeed(eye_folder, monkeypatch):
    """Two runs (or two `accelerate launch` ranks) on one cold cache: both writers meet mid-write, neither fails."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    both_writing = threading.Barrier(2)
    real_save = data.save_file

    def save_when_both_are_writing(tensors, path):
        both_writing.wait(timeout=30)  # the two writes overlap, every time
        real_save(tensors, path)

    monkeypatch.setattr(data, "save_file", save_when_both_are_writing)
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(lambda _: load_dataset(eye_folder, image_size=32), range(2))
    assert torch.equal(first.images, second.images)
    monkeypatch.setattr(data, "save_file", real_save)
    assert torch.equal(load_dataset(eye_folder, image_size=32).images, first.images)  # the cache is whole
    assert [p.suffix for p in sorted(data.default_cache_dir().iterdir())] == [".json", ".safetensors"]  # no temp files left


def test_bad_files_are_skipped_and_counted(eye_folder, caplog):
    folder = eye_folder / "train" / "open"
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "text.png").write_text("not an image")
    good = (folder / "eye_0_000.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 3])
    with caplog.at_level(logging.WARNING):
        dataset = load_dataset(eye_folder, image_size=32)
    assert len(dataset) == 38
    assert "skipped 3 of 41 images that could not be read" in caplog.text
    assert not any(path.endswith(("zero.jpg", "text.png", "truncated.jpg")) for path in dataset.paths)


def test_odd_image_modes_decode(tmp_path):
    base = make_eye(True, size=48)
    variants = {
        "rgba.png": base.convert("RGBA"),
        "palette.png": base.convert("P"),
        "sixteen.png": Image.fromarray((np.asarray(base, dtype=np.uint16) * 256)),
        "cmyk.jpg": base.convert("CMYK"),
        "tiny.png": base.resize((8, 8)),
        "huge.png": base.resize((3000, 3000)),
    }
    for name, image in variants.items():
        image.save(tmp_path / name)
        array = data.decode_image(tmp_path / name, 32, 1)
        assert array.shape == (1, 32, 32) and array.dtype == np.uint8
        assert 20 < array.mean() < 240, name  # not a blank image


def test_exif_rotation_is_applied(tmp_path):
    image = Image.new("L", (60, 30), 0)
    image.paste(255, (0, 0, 30, 30))  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when displayed
    image.save(tmp_path / "rotated.jpg", exif=exif.tobytes())
    array = data.decode_image(tmp_path / "rotated.jpg", 32, 1)[0]
    assert array[:8].mean() > 200 and array[-8:].mean() < 50  # white moved to the top


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(data, "MAX_IMAGE_PIXELS", 1000)
    make_eye(True, size=40).save(tmp_path / "bomb.png")  # 1600 px > limit
    with pytest.raises(Exception, match="(?i)decompression|exceeds"):
        data.decode_image(tmp_path / "bomb.png", 32, 1)


def test_decoding_leaves_pils_process_wide_limit_alone(tmp_path, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 123_456_789)  # the value some other library in the process chose
    make_eye(True, size=40).save(tmp_path / "eye.png")
    assert data.decode_image(tmp_path / "eye.png", 32, 1).shape == (1, 32, 32)
    assert Image.MAX_IMAGE_PIXELS == 123_456_789


@pytest.mark.parametrize(
    "setup, message",
    [
        (lambda root: None, "no images"),
        (lambda root: write_eyes(root / "misc", True, 3), "none in a folder named open / closed"),
        (lambda root: write_eyes(root / "open", True, 3), "only 'open' eyes"),
    ],
)
def test_unusable_folders_give_clear_errors(tmp_path, setup, message):
    root = tmp_path / "dataset"
    root.mkdir()
    setup(root)
    with pytest.raises(DataError, match=message) as error:
        load_dataset(root)
    assert str(root) in str(error.value)


def test_missing_folder_or_a_file_instead(tmp_path):
    with pytest.raises(DataError, match="no such folder"):
        discover(tmp_path / "nope")
    (tmp_path / "eye.png").write_bytes(b"x")
    with pytest.raises(DataError, match="eye.png: a file, not a folder"):
        discover(tmp_path / "eye.png")


def test_load_image_matches_training_preprocessing(eye_folder):
    config = ModelConfig(image_size=32, channels=1)
    path = eye_folder / "train" / "open" / "eye_0_000.jpg"
    x = data.load_image(path, config)
    assert x.shape == (1, 32, 32) and x.dtype == torch.float32
    assert -1.0 <= x.min() and x.max() <= 1.0
    dataset = load_dataset(eye_folder, image_size=32)
    index = dataset.paths.index(os.path.join("train", "open", "eye_0_000.jpg"))
    assert torch.equal(data.to_float(dataset.images[index]), x)
    assert torch.equal(data.to_uint8(x), dataset.images[index])


def test_kaggle_download_path_is_used(eye_folder, monkeypatch):
    import kagglehub

    calls = []
    monkeypatch.setattr(kagglehub, "dataset_download", lambda handle: calls.append(handle) or str(eye_folder))
    assert data.download_kaggle() == eye_folder
    assert calls == ["sehriyarmemmedli/open-closed-eyes-dataset"]


def test_kaggle_download_failure_explains_what_to_do(monkeypatch):
    import kagglehub

    def offline(handle):
        raise ConnectionError("Failed to resolve 'www.kaggle.com'")

    monkeypatch.setattr(kagglehub, "dataset_download", offline)
    with pytest.raises(DataError, match="--data-dir") as error:
        data.download_kaggle()
    assert "KAGGLE_KEY" in str(error.value) and "ConnectionError" in str(error.value)


def test_augment_shifts_whole_pixels_and_changes_lighting_within_bounds():
    x = torch.full((64, 1, 32, 32), -0.5)
    x[:, :, 10:22, 16] = 0.5  # one bright vertical line at column 16, rows 10-21
    y = data.augment(x, generator=torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.dtype == x.dtype
    assert -1.0 <= y.min() and y.max() <= 1.0
    columns = y[:, 0, 16].argmax(dim=1) - 16  # where the line went (row 16 is inside it for any shift of 4)
    assert columns.abs().max() == 4 and len(columns.unique()) > 5  # shifted, by whole pixels, both ways
    background = y[:, 0, 0, 0] + 0.5  # the background pixel's lighting change: contrast about the mean, plus brightness
    assert background.abs().max() < 0.3 and background.std() > 0.02
    line = y[:, 0, 16].amax(dim=1)
    assert torch.allclose(line - y[:, 0, 0, 0], (line - y[:, 0, 0, 0]).clamp(0.8, 1.25), atol=1e-5)  # contrast x0.8-1.25
    again = data.augment(x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(y, again)
