"""The page's callbacks, called directly with a tiny model and a small random latent map."""

from __future__ import annotations

import base64
import subprocess
import sys
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch
from conftest import make_eye, random_latent_map, tiny_model
from PIL import Image

from vaegan.data import load_image
from vaegan.latent_map import slerp
from vaegan.ui import (
    DISPLAY_SIZE,
    MAP_SCRIPT,
    SAMPLE_COUNT,
    Explorer,
    build_demo,
    decode,
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


def test_point_click_decodes_that_point_with_its_label(explorer, model, latent_map):
    state, picture, caption, slider, marks, pair = explorer.on_point(None, event(index=7))
    label = ("closed", "open")[int(latent_map.labels[7])]
    assert opened(picture).size == (DISPLAY_SIZE, DISPLAY_SIZE) and opened(picture).format == "PNG"
    np.testing.assert_array_equal(pixels(picture), pixels(to_picture(decode(model, latent_map.mu[7])[0])))
    assert "#7" in caption and f"labelled **{label}**" in caption
    p = float(latent_map.predict_open(latent_map.mu[7:8])[0])
    assert f"P(open) = {p:.2f}" in caption
    assert slider == 0.0
    assert marks["marks"] == [{"x": pytest.approx(float(latent_map.xy[7, 0])), "y": pytest.approx(float(latent_map.xy[7, 1])),
                               "text": f"B: #7 ({label})", "color": "#059669"}]
    assert "Pick one more eye for A" in pair  # one eye so far: no A yet
    np.testing.assert_array_equal(state["eyes"][-1]["z"], latent_map.mu[7])


def test_two_clicks_make_a_and_b(explorer, latent_map):
    state = explorer.on_point(None, event(index=1))[0]
    state, *_, marks, pair = explorer.on_point(state, event(index=2))
    assert [eye["name"].split()[0] for eye in state["eyes"]] == ["#1", "#2"]
    assert [mark["text"][0] for mark in marks["marks"]] == ["A", "B"]
    assert "**A:** #1" in pair and "**B:** #2" in pair
    state = explorer.on_point(state, event(index=3))[0]
    assert [eye["name"].split()[0] for eye in state["eyes"]] == ["#2", "#3"]  # only the last two are kept


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
    nearest = np.argsort(distances)[:8]
    weights = 1 / (distances[nearest] + 1e-6)
    expected = (latent_map.mu[nearest] * weights[:, None]).sum(0) / weights.sum()
    state, picture, caption, *_ = explorer.on_map_click(None, event(x=x, y=y))
    np.testing.assert_allclose(state["eyes"][-1]["z"], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(pixels(picture), pixels(to_picture(decode(model, expected)[0])))
    assert "8 eyes nearest" in caption
    assert state["eyes"][-1]["where"] == [pytest.approx(x), pytest.approx(y)]


def test_click_on_a_point_position_blends_to_that_point(latent_map):
    z, nearest = latent_map.latent_at(*latent_map.xy[11])
    assert 11 in nearest
    np.testing.assert_allclose(z, latent_map.mu[11], atol=1e-3)


def test_upload_is_encoded_reconstructed_placed_and_classified(explorer, model, latent_map, tmp_path):
    path = tmp_path / "eye.png"
    make_eye(True, size=90, seed=3).save(path)
    seen, reconstruction, verdict, state, picture, caption, *_ = explorer.on_upload(str(path), None)
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
    np.testing.assert_array_equal(again[3]["eyes"][-1]["z"], state["eyes"][-1]["z"])


def test_clearing_the_upload_changes_nothing(explorer):
    outputs = explorer.on_upload(None, None)
    assert len(outputs) == 9 and all(output == gr.update() for output in outputs)


def test_rgba_and_16_bit_uploads_are_accepted(explorer, tmp_path):
    rgba = tmp_path / "eye.png"
    Image.new("RGBA", (80, 50), (90, 60, 40, 128)).save(rgba)
    deep = tmp_path / "eye16.png"
    Image.fromarray((np.arange(64 * 64).reshape(64, 64) * 16).astype(np.uint16)).save(deep)
    for path in (rgba, deep):
        assert opened(explorer.on_upload(str(path), None)[1]).size == (DISPLAY_SIZE, DISPLAY_SIZE)


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
    assert opened(explorer.on_point(None, event(index=0))[1]).size == (DISPLAY_SIZE, DISPLAY_SIZE)


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
    state = explorer.on_point(None, event(index=4))[0]
    state = explorer.on_point(state, event(index=9))[0]
    strip_path, gif = explorer.on_interpolate(6, state)
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


def test_interpolation_needs_two_eyes(explorer):
    state = explorer.on_point(None, event(index=4))[0]
    with pytest.raises(gr.Error, match="Pick two eyes"):
        explorer.on_interpolate(6, state)


def test_same_seed_same_grid(explorer, latent_map):
    grid_a, samples_a, state, *_ = explorer.on_sample(5, None)
    grid_b, samples_b, *_ = explorer.on_sample(5, None)
    grid_c, *_ = explorer.on_sample(6, None)
    assert len(grid_a) == SAMPLE_COUNT
    for (x, _), (y, _) in zip(grid_a, grid_b):
        np.testing.assert_array_equal(pixels(x), pixels(y))
    assert any(not np.array_equal(pixels(x), pixels(y)) for (x, _), (y, _) in zip(grid_a, grid_c))
    # the first sample is the current eye, marked at its nearest real point
    z = samples_a["z"][0]
    nearest = int(np.argmin(((latent_map.mu - z) ** 2).sum(1)))
    assert state["eyes"][-1]["where"] == [pytest.approx(float(v)) for v in latent_map.xy[nearest]]
    assert f"#{nearest}" in state["eyes"][-1]["caption"]


def test_picking_a_sample_makes_it_current(explorer, model):
    _, samples, state, *_ = explorer.on_sample(2, None)
    state, picture, caption, *_ = explorer.on_sample_select(samples, state, gr.SelectData(None, {"index": 3, "value": None}))
    np.testing.assert_array_equal(pixels(picture), pixels(to_picture(decode(model, samples["z"][3])[0])))
    assert "sample 4 (seed 2)" in state["eyes"][-1]["name"]


def test_bad_seed_is_an_error(explorer):
    with pytest.raises(gr.Error, match="seed"):
        explorer.on_sample(-1, None)


def test_slider_moves_along_the_open_direction(explorer, model, latent_map):
    state, picture, *_ = explorer.on_point(None, event(index=12))
    at_zero, caption_zero = explorer.on_slider(0.0, state)
    np.testing.assert_array_equal(pixels(at_zero), pixels(to_picture(decode(model, latent_map.mu[12])[0])))
    np.testing.assert_array_equal(pixels(at_zero), pixels(picture))
    moved, caption = explorer.on_slider(1.5, state)
    expected = decode(model, latent_map.mu[12] + 1.5 * latent_map.open_direction)[0]
    np.testing.assert_array_equal(pixels(moved), pixels(to_picture(expected)))
    assert not np.array_equal(pixels(moved), pixels(at_zero))
    assert "1.5 × toward **open**" in caption


def test_points_payload_round_trips(latent_map):
    payload = points_payload(latent_map)
    x = np.frombuffer(base64.b64decode(payload["x"]), dtype=np.float32)
    y = np.frombuffer(base64.b64decode(payload["y"]), dtype=np.float32)
    labels = np.frombuffer(base64.b64decode(payload["labels"]), dtype=np.uint8)
    np.testing.assert_array_equal(np.stack([x, y], 1), latent_map.xy)
    np.testing.assert_array_equal(labels, latent_map.labels)
    assert payload["n"] == len(latent_map) and payload["names"] == ["closed", "open"]


def test_page_serves_plotly_locally(model, latent_map):
    demo = build_demo(model, latent_map)
    html = [block for block in demo.blocks.values() if isinstance(block, gr.HTML) and block.head]
    assert len(html) == 1
    head = html[0].head
    assert 'src="gradio_api/file=' in head and "http" not in head  # relative URL: offline, works under a sub-path
    script = Path(head.split("file=")[1].split('"')[0])
    assert script.is_file() and "plotly.js v" in script.read_text()[:200]
    assert html[0].js_on_load == MAP_SCRIPT.read_text(encoding="utf-8")  # the browser code ships beside ui.py
    assert "point_click" in html[0].js_on_load and "map_click" in html[0].js_on_load
    assert not any(isinstance(block, gr.Plot) for block in demo.blocks.values())  # Gradio's plotly.js would clash


def test_page_without_a_map(model, tmp_path):
    demo = build_demo(model, None)
    assert not any(isinstance(block, gr.HTML) and block.head for block in demo.blocks.values())
    explorer = Explorer(model, None, work_dir=tmp_path)
    path = tmp_path / "eye.png"
    make_eye(False, size=70).save(path)
    seen, reconstruction, verdict, state, picture, caption, slider, marks, *_ = explorer.on_upload(str(path), None)
    assert opened(reconstruction).size == (DISPLAY_SIZE, DISPLAY_SIZE) and "no latent map" in verdict
    assert marks is None and state["eyes"][-1]["where"] is None
    grid, samples, state, *_ = explorer.on_sample(0, state)
    assert len(grid) == SAMPLE_COUNT
    assert opened(explorer.on_interpolate(4, state)[0]).width > 0
    with pytest.raises(gr.Error, match="no latent map"):
        explorer.on_point(None, event(index=0))
    assert explorer.initial_state()["eyes"][0]["where"] is None


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
