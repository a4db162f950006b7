"""The page's callbacks, called directly with a tiny model and a small random latent map."""

from __future__ import annotations

import base64
import dataclasses
import gc
import os
import signal
import subprocess
import sys
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
from conftest import free_port, make_eye, random_latent_map, tiny_model
from PIL import Image

from vaegan.data import load_image
from vaegan.example_eyes import write_examples
from vaegan.latent_map import fit_mixture, slerp
from vaegan.config import ModelConfig
from vaegan.networks import VAEGAN
from vaegan.ui import (
    DISPLAY_SIZE,
    SAMPLE_COUNT,
    EyeResult,
    Explorer,
    build_demo,
    decode,
    image_kind,
    launch_options,
    points_payload,
    save_picture,
    to_picture,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def latent_map():
    return random_latent_map()


@pytest.fixture
def explorer(model, latent_map, tmp_path):
    return Explorer(model, latent_map, work_dir=tmp_path / "work")


def opened(picture: str | Image.Image) -> Image.Image:
    """A picture the page returned (the path of a file it serves), read back; PIL images pass through."""
    if isinstance(picture, Image.Image):
        return picture
    with Image.open(picture) as image:
        image.load()
        return image


def pixels(picture: str | Image.Image) -> np.ndarray:
    return np.asarray(opened(picture))


def event(**data) -> gr.EventData:
    return gr.EventData(None, data)


MARK_KEYS = ("x", "y", "text", "color")


def test_point_click_decodes_that_point_with_its_label(explorer, model, latent_map):
    result = explorer.on_point(None, event(index=7))
    label = ("closed", "open")[int(latent_map.labels[7])]
    picture, caption = result.picture, result.caption
    assert opened(picture).size == (DISPLAY_SIZE, DISPLAY_SIZE) and opened(picture).format == "PNG"
    np.testing.assert_array_equal(pixels(picture), pixels(to_picture(decode(model, latent_map.mu[7])[0])))
    assert "#7" in caption and f"labelled **{label}**" in caption
    p = float(latent_map.predict_open(latent_map.mu[7:8])[0])
    assert f"P(open) = {p:.2f}" in caption
    assert [{key: mark[key] for key in MARK_KEYS} for mark in result.marks] == [
        {"x": pytest.approx(float(latent_map.xy[7, 0])), "y": pytest.approx(float(latent_map.xy[7, 1])),
         "text": f"B: #7 ({label})", "color": "#059669"}]
    assert result.marks[0]["ay"] < 0 and result.marks[0]["yanchor"] == "bottom"  # alone: label above the mark
    assert "Pick one more eye for A" in result.pair  # one eye so far: no A yet
    np.testing.assert_array_equal(result.state["eyes"][-1]["z"], latent_map.mu[7])
    assert result.picture.startswith(str(explorer.picture_dir))  # pictures go where the Explorer was told


def test_two_clicks_make_a_and_b(explorer, latent_map):
    state = explorer.on_point(None, event(index=1)).state
    result = explorer.on_point(state, event(index=2))
    state = result.state
    assert [eye["name"].split()[0] for eye in state["eyes"]] == ["#1", "#2"]
    assert [mark["text"][0] for mark in result.marks] == ["A", "B"]
    assert "**A:** #1" in result.pair and "**B:** #2" in result.pair
    state = explorer.on_point(state, event(index=3)).state
    assert [eye["name"].split()[0] for eye in state["eyes"]] == ["#2", "#3"]  # only the last two are kept


def label_box(mark: dict, width: float = 150, height: float = 20, scale: float = 40.0) -> tuple[float, float, float, float]:
    """The screen box (left, top, right, bottom) of a mark's label on a map drawn at `scale` pixels per unit."""
    tail_x, tail_y = mark["x"] * scale + mark["ax"], -mark["y"] * scale + mark["ay"]  # screen y grows downwards
    left = {"left": tail_x, "right": tail_x - width}[mark["xanchor"]]
    top = {"bottom": tail_y - height, "top": tail_y}[mark["yanchor"]]
    return left, top, left + width, top + height


@pytest.mark.parametrize("offset", [(0.0, 0.0), (0.05, 0.0), (-0.3, 0.02), (0.0, -0.4), (1.0, 0.6), (-2.0, -1.5)])
def test_a_and_b_labels_never_overlap(explorer, latent_map, offset):
    b = latent_map.xy[5]
    eyes = [{"name": "upload 1 (a-rather-long-file-name.png)", "where": [float(b[0] + offset[0]), float(b[1] + offset[1])]},
            {"name": "upload 2 (another-long-file-name.png)", "where": [float(b[0]), float(b[1])]}]
    marks = explorer.marks(eyes)
    assert [mark["text"][0] for mark in marks] == ["A", "B"]
    for scale in (10.0, 40.0, 400.0):  # zoomed out and in
        (l1, t1, r1, b1), (l2, t2, r2, b2) = (label_box(mark, scale=scale) for mark in marks)
        assert r1 <= l2 or r2 <= l1 or b1 <= t2 or b2 <= t1, f"labels overlap: {marks}"
    middle = (latent_map.xy[:, 0].min() + latent_map.xy[:, 0].max()) / 2
    for mark in marks:  # each label leans toward the middle of the map
        assert (mark["ax"] > 0) == (mark["x"] <= middle)


def test_point_click_outside_the_map_is_an_error(explorer):
    with pytest.raises(gr.Error, match="No point #100000"):
        explorer.on_point(None, event(index=100000))


def test_decode_point_api_returns_the_eye_and_its_facts(explorer, model, latent_map):
    picture, point = explorer.decode_point(7)
    np.testing.assert_array_equal(pixels(picture), pixels(to_picture(decode(model, latent_map.mu[7])[0])))
    assert point == {"index": 7, "label": ("closed", "open")[int(latent_map.labels[7])],
                     "p_open": pytest.approx(float(latent_map.predict_open(latent_map.mu[7:8])[0])),
                     "x": pytest.approx(float(latent_map.xy[7, 0])), "y": pytest.approx(float(latent_map.xy[7, 1]))}
    assert explorer.decode_point(7.0)[1]["index"] == 7  # JSON numbers may arrive as floats
    for bad in (-1, len(latent_map), 2.5, None):
        with pytest.raises(gr.Error, match=f"No point #{bad} on the map: it has points #0 to #{len(latent_map) - 1}"):
            explorer.decode_point(bad)


def test_empty_space_click_blends_the_nearest_points(explorer, model, latent_map):
    x, y = 0.3, -1.2
    distances = np.hypot(latent_map.xy[:, 0] - x, latent_map.xy[:, 1] - y)
    nearest = np.argsort(distances)[:3]
    weights = 1 / (distances[nearest] + 1e-6) ** 2
    expected = (latent_map.mu[nearest] * weights[:, None]).sum(0) / weights.sum()
    result = explorer.on_map_click(None, event(x=x, y=y))
    state, picture, caption = result.state, result.picture, result.caption
    np.testing.assert_allclose(state["eyes"][-1]["z"], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(pixels(picture), pixels(to_picture(decode(model, expected)[0])))
    assert "3 eyes nearest" in caption
    assert state["eyes"][-1]["where"] == [pytest.approx(x), pytest.approx(y)]


def test_click_on_a_point_position_blends_to_that_point(latent_map):
    z, nearest = latent_map.latent_at(*latent_map.xy[11])
    assert 11 in nearest
    np.testing.assert_allclose(z, latent_map.mu[11], atol=1e-3)


def test_upload_is_encoded_reconstructed_placed_and_classified(explorer, model, latent_map, tmp_path):
    path = tmp_path / "eye.png"
    make_eye(True, size=90, seed=3).save(path)
    result = explorer.on_upload(str(path), None)
    seen, reconstruction, verdict = result.seen, result.reconstruction, result.verdict
    state, caption = result.eye.state, result.eye.caption
    assert opened(seen).size == opened(reconstruction).size == (DISPLAY_SIZE, DISPLAY_SIZE)
    x = load_image(path, model.config)  # the training preprocessing
    with torch.no_grad():
        mu = model.encode(x[None])[0].numpy()
    np.testing.assert_allclose(state["eyes"][-1]["z"], mu[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(pixels(reconstruction), pixels(to_picture(decode(model, mu[0])[0])))
    np.testing.assert_allclose(state["eyes"][-1]["where"], latent_map.place(mu)[0], rtol=1e-5)
    p = float(latent_map.predict_open(mu)[0])
    assert f"Predicted **{('closed', 'open')[int(p >= 0.5)]}** (P(open) = {p:.2f})" in verdict
    assert "Your upload" in caption
    # Gradio hands the raw upload (preprocess=False) as a dict or a FileData with a path
    again = explorer.on_upload({"path": str(path), "orig_name": "eye.png"}, None)
    np.testing.assert_array_equal(again.eye.state["eyes"][-1]["z"], state["eyes"][-1]["z"])


def test_uploads_are_numbered_and_named_by_their_files(explorer, tmp_path):
    first, second = tmp_path / "left eye.png", tmp_path / "right<eye>.jpg"
    make_eye(True, size=90, seed=1).save(first)
    make_eye(False, size=90, seed=2).save(second)
    state = explorer.on_upload(str(first), None).eye.state
    result = explorer.on_upload({"path": str(second), "orig_name": "right<eye>.jpg"}, state)
    assert [eye["name"] for eye in result.eye.state["eyes"]] == ["upload 1 (left_eye.png)", "upload 2 (right_eye_.jpg)"]
    assert "**A:** upload 1 (left_eye.png)" in result.eye.pair and "**B:** upload 2 (right_eye_.jpg)" in result.eye.pair
    assert [mark["text"] for mark in result.eye.marks] == ["A: upload 1 (left_eye.png)", "B: upload 2 (right_eye_.jpg)"]
    # Gradio reports a new upload twice after an example was picked: the second report changes nothing
    assert explorer.on_upload({"path": str(second), "orig_name": "right<eye>.jpg"}, result.eye.state) is None
    long = tmp_path / ("x" * 80 + ".png")
    make_eye(True, size=90).save(long)
    name = explorer.on_upload(str(long), result.eye.state).eye.state["eyes"][-1]["name"]
    assert name.startswith("upload 3 (") and len(name) < 50 and name.endswith(".png)")


def test_clearing_the_upload_changes_nothing(explorer, model, latent_map):
    assert explorer.on_upload(None, None) is None
    page_upload = page_function(build_demo(model, latent_map), "on_upload")
    assert page_upload(None, None) == gr.skip()  # every output left as it is


def test_rgba_and_16_bit_uploads_are_accepted(explorer, tmp_path):
    rgba = tmp_path / "eye.png"
    Image.new("RGBA", (80, 50), (90, 60, 40, 128)).save(rgba)
    deep = tmp_path / "eye16.png"
    Image.fromarray((np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)).save(deep)
    for path in (rgba, deep):
        assert opened(explorer.on_upload(str(path), None).reconstruction).size == (DISPLAY_SIZE, DISPLAY_SIZE)


def test_bad_uploads_give_clear_errors(explorer, tmp_path):
    text = tmp_path / "notes.png"
    text.write_text("this is not an image")
    with pytest.raises(gr.Error, match="not an image we can read"):
        explorer.on_upload(str(text), None)
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(gr.Error, match="not an image we can read"):
        explorer.on_upload(str(empty), None)
    truncated = tmp_path / "truncated.png"
    make_eye(False, size=90).save(truncated)
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(gr.Error, match="not an image we can read"):
        explorer.on_upload(str(truncated), None)
    for side in (7000, 10000):  # 49 M pixels (over the limit) and 100 M (over twice the limit): small files, huge images
        bomb = tmp_path / f"bomb{side}.png"
        Image.new("1", (side, side)).save(bomb)
        assert bomb.stat().st_size < 2**20
        with pytest.raises(gr.Error, match="too many pixels"):
            explorer.on_upload(str(bomb), None)
    huge = tmp_path / "huge.jpg"
    with open(huge, "wb") as handle:
        handle.truncate(25 * 2**20)  # sparse: no disk space used
    with pytest.raises(gr.Error, match="25 MB"):
        explorer.on_upload(str(huge), None)
    with pytest.raises(gr.Error, match="could not be read"):
        explorer.on_upload(str(tmp_path / "gone.png"), None)
    # and the explorer still works afterwards
    assert opened(explorer.on_point(None, event(index=0)).picture).size == (DISPLAY_SIZE, DISPLAY_SIZE)


def test_slerp_endpoints_and_sphere():
    rng = np.random.default_rng(1)
    a, b = rng.normal(size=16).astype(np.float32), rng.normal(size=16).astype(np.float32)
    path = slerp(a, b, np.linspace(0, 1, 9))
    np.testing.assert_array_equal(path[0], a)
    np.testing.assert_array_equal(path[-1], b)
    b_same_norm = b / np.linalg.norm(b) * np.linalg.norm(a)
    norms = np.linalg.norm(slerp(a, b_same_norm, np.linspace(0, 1, 9)), axis=1)
    np.testing.assert_allclose(norms, np.linalg.norm(a), rtol=1e-5)  # stays on the sphere, unlike a straight line
    assert np.linalg.norm((a + b_same_norm) / 2) < 0.95 * np.linalg.norm(a)
    np.testing.assert_allclose(slerp(a, 2 * a, np.array([0.5])), [1.5 * a], rtol=1e-6)  # parallel: linear


def test_interpolation_strip_and_gif_run_from_a_to_b(explorer, model, latent_map):
    state = explorer.on_point(None, event(index=4)).state
    state = explorer.on_point(state, event(index=9)).state
    result = explorer.on_interpolate(6, state)
    strip_path, gif = result.strip, result.gif
    strip = opened(strip_path)
    frame = strip.height
    assert strip.size == (6 * (frame + 4) - 4, frame)
    first = to_picture(decode(model, latent_map.mu[4])[0], frame)
    last = to_picture(decode(model, latent_map.mu[9])[0], frame)
    opaque = pixels(strip.convert("L"))
    np.testing.assert_array_equal(opaque[:, :frame], pixels(first))
    np.testing.assert_array_equal(opaque[:, -frame:], pixels(last))
    assert pixels(strip)[:, frame:frame + 4, 1].max() == 0  # transparent gaps between frames
    with Image.open(gif) as animation:
        assert animation.format == "GIF" and animation.n_frames == 2 * 6 - 2


def test_pictures_are_files_named_by_content_and_written_whole(tmp_path):
    eye, other = make_eye(True, size=64), make_eye(False, size=64)
    first = save_picture(eye, tmp_path)
    assert save_picture(eye, tmp_path) == first != save_picture(other, tmp_path)  # one file per distinct picture
    np.testing.assert_array_equal(pixels(first), pixels(eye))
    assert sorted(p.name.startswith("eye-") for p in tmp_path.iterdir()) == [True, True]  # no staging files left


def test_an_explorer_removes_the_folder_it_made(model, latent_map):
    explorer = Explorer(model, latent_map)  # no work_dir: the page's case, one folder in /tmp per start
    work_dir = explorer.work_dir
    write_examples(work_dir)
    assert any(work_dir.iterdir())
    del explorer
    gc.collect()
    assert not work_dir.exists()


def test_interpolation_needs_two_eyes(explorer):
    state = explorer.on_point(None, event(index=4)).state
    with pytest.raises(gr.Error, match="Pick two eyes"):
        explorer.on_interpolate(6, state)


def test_same_seed_same_grid(explorer, latent_map):
    result_a = explorer.on_sample(5, None)
    grid_a, samples_a, state = result_a.gallery, result_a.samples, result_a.eye.state
    grid_b = explorer.on_sample(5, None).gallery
    grid_c = explorer.on_sample(6, None).gallery
    assert len(grid_a) == SAMPLE_COUNT
    for (x, _), (y, _) in zip(grid_a, grid_b):
        np.testing.assert_array_equal(pixels(x), pixels(y))
    assert any(not np.array_equal(pixels(x), pixels(y)) for (x, _), (y, _) in zip(grid_a, grid_c))
    # the first sample is the current eye, marked at its nearest real point
    z = samples_a["z"][0]
    nearest = int(np.argmin(((latent_map.mu - z) ** 2).sum(1)))
    assert state["eyes"][-1]["where"] == [pytest.approx(float(v)) for v in latent_map.xy[nearest]]
    caption = state["eyes"][-1]["caption"]
    assert f"#{nearest}" in caption
    # the nearest eye's label is said to be that eye's, not a label for the sample
    label = ("closed", "open")[int(latent_map.labels[nearest])]
    assert "closest latent on the map" in caption and f"its label ({label}) is that eye's, not the sample's" in caption


def test_samples_come_from_the_latent_mixture_when_the_map_has_one(model, latent_map, tmp_path):
    with_mixture = dataclasses.replace(latent_map, **fit_mixture(latent_map.mu, components=3))
    explorer = Explorer(model, with_mixture, work_dir=tmp_path / "work")
    assert explorer.default_source == "mixture"
    drawn = explorer.on_sample(4, None)
    np.testing.assert_array_equal(drawn.samples["z"], with_mixture.sample_mixture(SAMPLE_COUNT, torch.Generator().manual_seed(4)))
    assert "drawn from the Gaussian mixture fitted to the training eyes' latents" in drawn.eye.state["eyes"][-1]["caption"]
    prior = explorer.on_sample(4, None, "prior")
    np.testing.assert_array_equal(prior.samples["z"], torch.randn(SAMPLE_COUNT, 8, generator=torch.Generator().manual_seed(4)).numpy())
    assert "drawn from the prior" in prior.eye.state["eyes"][-1]["caption"]
    picked = explorer.on_sample_select(drawn.samples, drawn.eye.state, gr.SelectData(None, {"index": 2, "value": None}))
    assert "Gaussian mixture" in picked.state["eyes"][-1]["caption"]  # a picked sample still says where it came from
    # a map without a mixture: the prior by default, and asking for the mixture is a clear error
    plain = Explorer(model, latent_map, work_dir=tmp_path / "plain")
    assert plain.default_source == "prior"
    with pytest.raises(gr.Error, match="no mixture"):
        plain.on_sample(0, None, "mixture")
    # the page: the radio shows only with a mixture, starts on it, and its choice reaches the explorer
    for demo, shown in ((build_demo(model, with_mixture), True), (build_demo(model, latent_map), False)):
        radio = next(block for block in demo.blocks.values() if getattr(block, "elem_id", None) == "sample-source")
        assert radio.visible is shown and radio.value == demo.explorer.default_source
    page = page_function(demo := build_demo(model, with_mixture), "on_sample")
    assert by_id(page(4, None, "prior"))["samples"] == demo.explorer.on_sample(4, None, "prior").gallery


def test_picking_a_sample_makes_it_current(explorer, model):
    drawn = explorer.on_sample(2, None)
    samples = drawn.samples
    result = explorer.on_sample_select(samples, drawn.eye.state, gr.SelectData(None, {"index": 3, "value": None}))
    np.testing.assert_array_equal(pixels(result.picture), pixels(to_picture(decode(model, samples["z"][3])[0])))
    assert "sample 4 (seed 2)" in result.state["eyes"][-1]["name"]


def test_the_sample_tab_opens_on_seed_0s_grid_ready_to_pick(model, latent_map):
    demo = build_demo(model, latent_map)
    explorer = demo.explorer
    gallery = next(block for block in demo.blocks.values() if getattr(block, "elem_id", None) == "samples")
    shown = [Path(item["image"]["path"]).read_bytes() for item in gallery.value]
    drawn = explorer.on_sample(0, None)
    assert shown == [Path(path).read_bytes() for path, _ in drawn.gallery]  # seed 0's grid, as the Sample button draws it
    caption = next(block for block in demo.blocks.values() if getattr(block, "elem_id", None) == "current-caption")
    assert caption.value == explorer.initial_view().caption and "sample" not in caption.value.lower()  # the current eye is unchanged
    state = next(block for block in demo.blocks.values() if isinstance(block, gr.State) and isinstance(block.value, dict) and "z" in block.value)
    np.testing.assert_array_equal(state.value["z"], drawn.samples["z"])
    picked = explorer.on_sample_select(state.value, explorer.initial_state(), gr.SelectData(None, {"index": 5, "value": None}))
    assert "sample 6 (seed 0)" in picked.state["eyes"][-1]["name"]


def test_bad_seed_is_an_error(explorer):
    with pytest.raises(gr.Error, match="seed"):
        explorer.on_sample(-1, None)


def test_slider_moves_along_the_open_direction(explorer, model, latent_map):
    shown = explorer.on_point(None, event(index=12))
    state, picture = shown.state, shown.picture
    at_zero = explorer.on_slider(0.0, state).picture
    np.testing.assert_array_equal(pixels(at_zero), pixels(to_picture(decode(model, latent_map.mu[12])[0])))
    np.testing.assert_array_equal(pixels(at_zero), pixels(picture))
    result = explorer.on_slider(1.5, state)
    moved, caption = result.picture, result.caption
    expected = decode(model, latent_map.mu[12] + 1.5 * latent_map.open_direction)[0]
    np.testing.assert_array_equal(pixels(moved), pixels(to_picture(expected)))
    assert not np.array_equal(pixels(moved), pixels(at_zero))
    assert "1.5 × toward **open**" in caption
    assert explorer.on_slider(1.0, {"eyes": []}) is None  # no current eye: nothing changes


def test_points_payload_round_trips(latent_map):
    payload = points_payload(latent_map)
    x = np.frombuffer(base64.b64decode(payload["x"]), dtype=np.float32)
    y = np.frombuffer(base64.b64decode(payload["y"]), dtype=np.float32)
    labels = np.frombuffer(base64.b64decode(payload["labels"]), dtype=np.uint8)
    np.testing.assert_array_equal(np.stack([x, y], 1), latent_map.xy)
    np.testing.assert_array_equal(labels, latent_map.labels)
    assert payload["n"] == len(latent_map) and payload["names"] == ["closed", "open"]


def page_function(demo: gr.Blocks, name: str):
    """The function the page calls for event `name`, as Gradio calls it."""
    return next(block_fn.fn for block_fn in demo.fns.values() if block_fn.name == name)


def by_id(outputs: dict) -> dict:
    """A callback's dict of component -> value, keyed by the components' elem_ids."""
    return {component.elem_id: value for component, value in outputs.items()}


def test_page_maps_named_results_to_their_components(model, latent_map):
    demo = build_demo(model, latent_map)
    explorer = demo.explorer
    state = explorer.initial_state()
    outputs = page_function(demo, "on_point")(state, event(index=7))
    expected = explorer.on_point(state, event(index=7))
    shown = by_id(outputs)
    assert isinstance(expected, EyeResult) and shown["current-eye"] == expected.picture
    assert shown["current-caption"] == expected.caption and shown["pair-caption"] == expected.pair
    assert shown["open-slider"] == 0.0  # a new eye starts at the slider's middle
    assert shown["latent-map"] == gr.update(marks=expected.marks)
    states = [value for component, value in outputs.items() if isinstance(component, gr.State)]
    assert len(states) == 1 and states[0]["eyes"][-1]["name"] == expected.state["eyes"][-1]["name"]
    # every key is one of the event's declared outputs: nothing can go to the wrong component
    for name in ("on_point", "on_map_click", "on_upload", "on_sample", "on_sample_select", "on_slider", "on_interpolate"):
        block_fn = next(f for f in demo.fns.values() if f.name == name)
        assert all(isinstance(output, gr.components.Component) for output in block_fn.outputs)
    sampled = page_function(demo, "on_sample")(3, state)
    assert by_id(sampled)["samples"] == explorer.on_sample(3, state).gallery
    moved = by_id(page_function(demo, "on_slider")(1.0, state))
    assert set(moved) == {"current-eye", "current-caption"}
    assert page_function(demo, "on_slider")(1.0, {"eyes": []}) == gr.skip()


def test_page_text_follows_the_model_config(tmp_path):
    torch.manual_seed(0)
    rgb = VAEGAN(ModelConfig(image_size=32, channels=3, base_channels=8, latent_dim=8)).eval()
    assert image_kind(rgb.config) == "32x32 RGB" and image_kind(ModelConfig()) == "64x64 grayscale"
    demo = build_demo(rgb, None)
    texts = " ".join(block.value for block in demo.blocks.values() if isinstance(block, gr.Markdown) and block.value)
    labels = [block.label for block in demo.blocks.values() if isinstance(block, gr.Image)]
    assert "32x32 RGB" in texts and "64x64" not in texts and "grayscale" not in texts
    assert "What the model sees (32x32)" in labels
    path = tmp_path / "eye.png"
    make_eye(True, size=50).save(path)
    result = Explorer(rgb, None, work_dir=tmp_path / "work").on_upload(str(path), None)
    assert opened(result.seen).mode == "RGB" and opened(result.reconstruction).size == (DISPLAY_SIZE, DISPLAY_SIZE)


def test_page_uses_system_fonts_only():
    theme = launch_options()["theme"]
    # Gradio's default theme points "Source Sans Pro" 600 at a file holding only "A", "B" and some Cyrillic:
    # bold text mixed two fonts ("VAE-GAN" with small A's). System fonts come with no file to load.
    assert "Source Sans" not in theme.font and "system-ui" in theme.font
    assert theme._stylesheets == [] and "@font-face" not in theme._get_theme_css()


def test_page_serves_plotly_locally(model, latent_map):
    demo = build_demo(model, latent_map)
    html = [block for block in demo.blocks.values() if isinstance(block, gr.HTML) and block.head]
    assert len(html) == 1
    head = html[0].head
    assert 'src="gradio_api/file=' in head and "http" not in head  # relative URL: offline, works under a sub-path
    script = Path(head.split("file=")[1].split('"')[0])
    assert script.is_file() and "plotly.js v" in script.read_text()[:200]
    assert "trigger('point_click'" in html[0].js_on_load and "trigger('map_click'" in html[0].js_on_load
    # what the script triggers reaches the callbacks: a point_click with {index} decodes that map point
    events = {trigger[1]: block_fn.fn for block_fn in demo.fns.values() for trigger in block_fn.targets}
    shown = by_id(events["point_click"](demo.explorer.initial_state(), event(index=5)))
    np.testing.assert_array_equal(pixels(shown["current-eye"]), pixels(to_picture(decode(model, latent_map.mu[5])[0])))
    x, y = (float(v) for v in latent_map.xy[5])
    blended = by_id(events["map_click"](demo.explorer.initial_state(), event(x=x, y=y)))
    assert f"nearest to ({x:.2f}, {y:.2f})" in blended["current-caption"]
    assert not any(isinstance(block, gr.Plot) for block in demo.blocks.values())  # Gradio's plotly.js would clash


def test_page_without_a_map(model, tmp_path):
    demo = build_demo(model, None)
    assert not any(isinstance(block, gr.HTML) and block.head for block in demo.blocks.values())
    explorer = Explorer(model, None, work_dir=tmp_path)
    path = tmp_path / "eye.png"
    make_eye(False, size=70).save(path)
    result = explorer.on_upload(str(path), None)
    state = result.eye.state
    assert opened(result.reconstruction).size == (DISPLAY_SIZE, DISPLAY_SIZE) and "no latent map" in result.verdict
    assert result.eye.marks is None and state["eyes"][-1]["where"] is None
    sampled = explorer.on_sample(0, state)
    state = sampled.eye.state
    assert len(sampled.gallery) == SAMPLE_COUNT
    assert opened(explorer.on_interpolate(4, state).strip).width > 0
    with pytest.raises(gr.Error, match="no latent map"):
        explorer.on_point(None, event(index=0))
    assert explorer.initial_state()["eyes"][0]["where"] is None
    shown = by_id(page_function(demo, "on_sample")(0, explorer.initial_state()))
    assert "latent-map" not in shown and len(shown["samples"]) == SAMPLE_COUNT  # no map to mark


def test_ui_and_app_import_without_umap():
    code = "import sys, app, vaegan.ui; assert 'umap' not in sys.modules and 'numba' not in sys.modules, 'umap imported'"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)


def test_app_exits_with_a_one_line_error_for_a_missing_model(tmp_path, capsys, monkeypatch):
    import app

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert app.main(["--model", str(tmp_path / "no-such-model")]) == 1
    error = capsys.readouterr().err.strip()
    assert error.startswith("error:") and "no-such-model" in error and "\n" not in error


def test_app_on_a_taken_port_exits_with_a_one_line_error(capsys):
    import socket

    import app

    threads = torch.get_num_threads()  # app.main sets one thread for the whole process
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        try:
            assert app.main(["--port", str(port)]) == 1
        finally:
            torch.set_num_threads(threads)
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("error: can't serve on 127.0.0.1:") and str(port) in error and "--port" in error


def test_app_stops_cleanly_on_sigterm(tmp_path):
    """A container stop (SIGTERM) closes the server like Ctrl+C: exit 0, and the page's temporary folders are gone."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, env={**os.environ, "TMPDIR": str(tmp_path)})
    try:
        for line in process.stdout:  # serving once it prints its URL
            if "Running on local URL" in line:
                break
        assert list(tmp_path.glob("vaegan-ui-*")), "the page made no folder of its own"
        assert list(tmp_path.glob("gradio/vaegan-*/*.png")), "no pictures in Gradio's cache"  # the start eye, seed 0's grid
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0
    finally:
        process.kill()
    assert not list(tmp_path.glob("vaegan-ui-*")) and not list(tmp_path.glob("gradio/vaegan-*"))


def test_app_flags_follow_the_environment(monkeypatch):
    import app

    for name in ("SPACE_ID", "PORT", "VAEGAN_MODEL"):
        monkeypatch.delenv(name, raising=False)
    args = app.parse_args([])
    assert (args.host, args.port, args.share) == ("127.0.0.1", 7860, False)
    assert args.model == str(ROOT / "assets" / "demo-model")
    monkeypatch.setenv("PORT", "9000")
    monkeypatch.setenv("VAEGAN_MODEL", "someone/eyes")
    args = app.parse_args([])
    assert (args.host, args.port, args.model) == ("0.0.0.0", 9000, "someone/eyes")
    monkeypatch.delenv("PORT")
    monkeypatch.setenv("SPACE_ID", "someone/space")
    assert app.parse_args(["--port", "7000"]).host == "0.0.0.0"
