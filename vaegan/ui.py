"""The Gradio page: a clickable latent map, upload-and-encode, interpolation, sampling and an open <-> closed slider.

`build_demo(model, latent_map)` returns the page; the callbacks are methods of `Explorer`, plain
functions that tests call directly. The map is a plotly.js WebGL scatter inside a `gr.HTML`
(Gradio's own plot components give no clicked point): plotly.js comes from the installed
`plotly` package, the browser code is `ui_map.js` beside this file, the points are fetched once
through a server function as base64 float32, and clicks come back as the custom events
`point_click` / `map_click`. API clients decode a map point through the endpoint `/decode_point`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np
import torch
from gradio.utils import get_upload_folder
from PIL import Image

from vaegan.data import LABEL_NAMES, load_image, to_uint8
from vaegan.example_eyes import write_examples
from vaegan.latent_map import LatentMap, slerp
from vaegan.networks import VAEGAN

logger = logging.getLogger(__name__)

DISPLAY_SIZE = 256  # pixels of the shown eyes: a 64-pixel crop upscaled
THUMB_SIZE = 128
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
NEIGHBOURS = 8  # latents blended for a click on empty map space
SAMPLE_COUNT = 16
SLIDER_RANGE = 2.0  # in units of open_direction (the distance between the class means)
COLOURS = {"A": "#c026d3", "B": "#059669"}

EMPTY_STATE: dict[str, Any] = {"eyes": []}


# ---------------------------------------------------------------- pictures and payloads


@torch.no_grad()
def decode(model: VAEGAN, z: np.ndarray) -> np.ndarray:
    """Latents (B, Z) or (Z,) -> uint8 images (B, H, W, C)."""
    model.eval()
    device = next(model.parameters()).device
    z = torch.as_tensor(np.atleast_2d(z), dtype=torch.float32, device=device)
    return to_uint8(model.decode(z)).permute(0, 2, 3, 1).cpu().numpy()  # (B, H, W, C)


def to_picture(image: np.ndarray, size: int = DISPLAY_SIZE) -> Image.Image:
    """uint8 (H, W, C) -> a PIL image upscaled to size x size (bicubic)."""
    picture = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    return picture.resize((size, size), Image.Resampling.BICUBIC)


def save_picture(picture: Image.Image, folder: Path, stem: str = "eye", suffix: str = ".png", **options: Any) -> str:
    """Write a picture to `folder` under a name made from its content, whole or not at all; returns the path.

    Gradio saves a returned PIL image by rewriting one content-named file in place, so two users
    shown the same eye at once could be served a half-written file (seen with 20 clients on a few
    points). A temp file renamed into place is never read half-written, and Gradio serves a file
    from its own cache folder as it is.
    """
    if suffix == ".png":
        options.setdefault("compress_level", 1)  # 0.8 ms for a 256 px eye, 3x faster than the default; 11 KB, not 8
    buffer = io.BytesIO()
    picture.save(buffer, format=suffix.lstrip("."), **options)
    data = buffer.getvalue()
    path = folder / f"{stem}-{hashlib.sha256(data).hexdigest()[:24]}{suffix}"
    if not path.exists():
        descriptor, staging = tempfile.mkstemp(dir=folder, prefix=".staging-")
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.replace(staging, path)
    return str(path)


def points_payload(latent_map: LatentMap) -> dict[str, Any]:
    """Compact point data for the browser: x, y as base64 float32, labels as base64 uint8."""
    xy = np.ascontiguousarray(latent_map.xy, dtype=np.float32)
    return {
        "n": len(latent_map),
        "x": base64.b64encode(np.ascontiguousarray(xy[:, 0]).tobytes()).decode(),
        "y": base64.b64encode(np.ascontiguousarray(xy[:, 1]).tobytes()).decode(),
        "labels": base64.b64encode(latent_map.labels.astype(np.uint8).tobytes()).decode(),
        "names": list(LABEL_NAMES),
    }


# ---------------------------------------------------------------- callbacks


class Explorer:
    """The page's callbacks; each takes and returns plain values (state is a dict with the last two eyes)."""

    def __init__(self, model: VAEGAN, latent_map: LatentMap | None, work_dir: str | os.PathLike | None = None):
        self.model = model.eval()
        self.latent_map = latent_map
        self.work_dir = Path(work_dir or tempfile.mkdtemp(prefix="vaegan-ui-"))
        self.work_dir.mkdir(parents=True, exist_ok=True)
        # the pictures the page shows, in Gradio's cache folder (served from there as they are), one folder per page
        cache = Path(get_upload_folder())
        cache.mkdir(parents=True, exist_ok=True)
        self.picture_dir = Path(tempfile.mkdtemp(prefix="vaegan-", dir=cache))
        self.open_direction = None if latent_map is None else latent_map.open_direction.astype(np.float32)

    # ---- helpers

    def probability(self, z: np.ndarray) -> float | None:
        """P(open) of a latent from the map's probe, or None without a map."""
        if self.latent_map is None:
            return None
        return float(self.latent_map.predict_open(z[None].astype(np.float32))[0])

    def picture(self, image: np.ndarray, size: int = DISPLAY_SIZE) -> str:
        """uint8 (H, W, C) upscaled to size x size, as a PNG file the page can serve (its path)."""
        return save_picture(to_picture(image, size), self.picture_dir)

    def _probe_text(self, z: np.ndarray) -> str:
        p = self.probability(z)
        return "" if p is None else f"probe: **{LABEL_NAMES[int(p >= 0.5)]}**, P(open) = {p:.2f}"

    def _eye(self, name: str, z: np.ndarray, caption: str, where, image: np.ndarray | None = None) -> dict[str, Any]:
        image = decode(self.model, z)[0] if image is None else image
        return {"name": name, "z": z.astype(np.float32), "image": image, "caption": caption,
                "where": None if where is None else [float(where[0]), float(where[1])]}

    def marks(self, eyes: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Annotations for the map: where A and B (the last two eyes) are."""
        out = []
        for tag, eye in zip(("A", "B")[-len(eyes):] if eyes else (), eyes):
            if eye["where"] is not None:
                out.append({"x": eye["where"][0], "y": eye["where"][1], "text": f"{tag}: {eye['name']}", "color": COLOURS[tag]})
        return out

    def _show(self, state: dict[str, Any] | None, eye: dict[str, Any]) -> tuple:
        """Make eye the current one (B; the previous B becomes A); outputs of every 'new eye' event."""
        eyes = ((state or EMPTY_STATE)["eyes"] + [eye])[-2:]
        state = {"eyes": eyes}
        pair = (f"**A:** {eyes[0]['name']} &nbsp;→&nbsp; **B:** {eyes[-1]['name']}" if len(eyes) == 2
                else f"**B:** {eyes[-1]['name']}. Pick one more eye for A.")
        marks = gr.update(marks=self.marks(eyes)) if self.latent_map is not None else None
        return state, self.picture(eye["image"]), eye["caption"], 0.0, marks, pair

    def _map_eye(self, index: Any) -> dict[str, Any]:
        """The eye of map point `index`: its mu decoded; gr.Error for a point not on the map."""
        if self.latent_map is None:
            raise gr.Error("This model has no latent map.")
        if index is None or not float(index).is_integer() or not 0 <= int(index) < len(self.latent_map):
            raise gr.Error(f"No point #{index} on the map: it has points #0 to #{len(self.latent_map) - 1}.")
        index = int(index)
        z = self.latent_map.mu[index]
        label = LABEL_NAMES[int(self.latent_map.labels[index])]
        caption = f"**Eye #{index}** from the map, labelled **{label}**. {self._probe_text(z)}"
        return self._eye(f"#{index} ({label})", z, caption, self.latent_map.xy[index])

    # ---- events

    def on_point(self, state: dict[str, Any] | None, evt: gr.EventData) -> tuple:
        """A click on a map point: decode that point's mu."""
        return self._show(state, self._map_eye(evt.index))

    def decode_point(self, index: float | None) -> tuple[str, dict[str, Any]]:
        """The API endpoint `/decode_point`: map point `index` decoded, with its label, P(open) and map position."""
        eye = self._map_eye(index)
        index = int(index)
        return self.picture(eye["image"]), {
            "index": index,
            "label": LABEL_NAMES[int(self.latent_map.labels[index])],
            "p_open": self.probability(eye["z"]),
            "x": eye["where"][0],
            "y": eye["where"][1],
        }

    def on_map_click(self, state: dict[str, Any] | None, evt: gr.EventData) -> tuple:
        """A click on empty map space: decode the inverse-distance blend of the nearest points' latents."""
        if self.latent_map is None:
            raise gr.Error("This model has no latent map.")
        x, y = float(evt.x), float(evt.y)
        z, nearest = self.latent_map.latent_at(x, y, k=NEIGHBOURS)
        labels = self.latent_map.labels[nearest]
        caption = (f"**Blend of the {len(nearest)} eyes nearest to ({x:.2f}, {y:.2f})** "
                   f"({int((labels == 1).sum())} open, {int((labels == 0).sum())} closed). {self._probe_text(z)}")
        return self._show(state, self._eye(f"blend at ({x:.1f}, {y:.1f})", z, caption, (x, y)))

    @torch.no_grad()
    def on_upload(self, upload: Any, state: dict[str, Any] | None) -> tuple:
        """An uploaded photo: preprocess as in training, encode, reconstruct, place on the map, predict."""
        path = _upload_path(upload)
        if path is None:
            return tuple(gr.update() for _ in range(9))
        x = read_upload(path, self.model)
        mu, _ = self.model.encode(x[None])  # (1, Z)
        z = mu[0].cpu().numpy().astype(np.float32)
        where = self.latent_map.place(z[None])[0] if self.latent_map is not None else None
        seen = to_uint8(x).permute(1, 2, 0).numpy()  # (H, W, C) what the encoder saw
        eye = self._eye("your upload", z, "", where)
        p = self.probability(z)
        verdict = f"Predicted **{LABEL_NAMES[int(p >= 0.5)]}** (P(open) = {p:.2f})." if p is not None else (
            "No open / closed prediction: this model has no latent map.")
        eye["caption"] = f"**Your upload**, reconstructed. {verdict}"
        return (self.picture(seen), self.picture(eye["image"]), verdict, *self._show(state, eye))

    def on_slider(self, amount: float, state: dict[str, Any] | None) -> tuple:
        """Move the current eye along the closed -> open direction by `amount` and decode it."""
        eyes = (state or EMPTY_STATE)["eyes"]
        if not eyes:
            return gr.update(), gr.update()
        eye = eyes[-1]
        if self.open_direction is None or amount == 0:
            return self.picture(eye["image"]), eye["caption"]
        z = eye["z"] + float(amount) * self.open_direction
        direction = "open" if amount > 0 else "closed"
        caption = f"**{eye['name']}**, moved {abs(amount):.1f} × toward **{direction}**. {self._probe_text(z)}"
        return self.picture(decode(self.model, z)[0]), caption

    def on_interpolate(self, steps: int, state: dict[str, Any] | None) -> tuple[str, str]:
        """Decode the slerp path from A to B: a strip of frames and an animated GIF (their paths)."""
        eyes = (state or EMPTY_STATE)["eyes"]
        if len(eyes) < 2:
            raise gr.Error("Pick two eyes first: click two points on the map, upload photos or sample.")
        steps = int(np.clip(steps, 2, 32))
        frames = decode(self.model, slerp(eyes[0]["z"], eyes[1]["z"], np.linspace(0, 1, steps)))  # (T, H, W, C)
        pictures = [to_picture(frame, THUMB_SIZE) for frame in frames]
        gap = 4
        mode = "LA" if frames.shape[-1] == 1 else "RGBA"  # transparent gaps suit light and dark themes
        strip = Image.new(mode, (steps * (THUMB_SIZE + gap) - gap, THUMB_SIZE))
        for i, picture in enumerate(pictures):
            strip.paste(picture.convert(mode), (i * (THUMB_SIZE + gap), 0))
        big = [to_picture(frame, DISPLAY_SIZE // 4 * 3) for frame in frames]
        loop = big + big[-2:0:-1]  # there and back
        gif = save_picture(loop[0], self.picture_dir, "interpolation", ".gif", save_all=True, append_images=loop[1:], duration=90, loop=0)
        return save_picture(strip, self.picture_dir, "interpolation-strip"), gif

    def sample_latents(self, seed: int | float | None) -> np.ndarray:
        """SAMPLE_COUNT latents from the prior N(0, I), seeded by an explicit generator: (S, Z)."""
        generator = torch.Generator().manual_seed(int(seed or 0))
        return torch.randn(SAMPLE_COUNT, self.model.config.latent_dim, generator=generator).numpy()

    def on_sample(self, seed: int | float | None, state: dict[str, Any] | None) -> tuple:
        """A grid of prior samples for a seed; the first becomes the current eye."""
        if seed is None or not np.isfinite(seed) or seed < 0:
            raise gr.Error("The seed must be a whole number from 0 upwards.")
        z = self.sample_latents(seed)
        images = decode(self.model, z)
        gallery = [(self.picture(image, THUMB_SIZE), f"sample {i + 1}") for i, image in enumerate(images)]
        samples = {"seed": int(seed), "z": z}
        return (gallery, samples, *self._show(state, self._sample_eye(samples, 0, images[0])))

    def on_sample_select(self, samples: dict[str, Any] | None, state: dict[str, Any] | None, evt: gr.SelectData) -> tuple:
        """A sample picked in the grid becomes the current eye."""
        if not samples:
            raise gr.Error("Draw samples first.")
        index = int(evt.index)
        return self._show(state, self._sample_eye(samples, index))

    def _sample_eye(self, samples: dict[str, Any], index: int, image: np.ndarray | None = None) -> dict[str, Any]:
        z = samples["z"][index]
        name = f"sample {index + 1} (seed {samples['seed']})"
        where, extra = None, ""
        if self.latent_map is not None:
            near = self.latent_map.nearest(z)
            where = self.latent_map.xy[near]
            extra = f" Nearest real eye: #{near} ({LABEL_NAMES[int(self.latent_map.labels[near])]}), marked on the map."
        caption = f"**{name.capitalize()}**, drawn from the prior. {self._probe_text(z)}{extra}"
        return self._eye(name, z, caption, where, image)

    def initial_state(self) -> dict[str, Any]:
        """Two eyes to start with: the most confidently closed and open map points, or two prior samples."""
        if self.latent_map is None:
            samples = {"seed": 0, "z": self.sample_latents(0)}
            return {"eyes": [self._sample_eye(samples, 0), self._sample_eye(samples, 1)]}
        p = self.latent_map.predict_open(self.latent_map.mu)
        return {"eyes": [self._map_eye(int(np.argmin(p))), self._map_eye(int(np.argmax(p)))]}


def _upload_path(upload: Any) -> str | None:
    """The file path of an upload, whether a path, a dict or a Gradio FileData."""
    if upload is None:
        return None
    if isinstance(upload, (str, os.PathLike)):
        return str(upload)
    if isinstance(upload, dict):
        return upload.get("path")
    return getattr(upload, "path", None)


def read_upload(path: str | os.PathLike, model: VAEGAN) -> torch.Tensor:
    """Preprocess an uploaded file as in training, (C, H, W) in [-1, 1]; gr.Error with a clear message when it can't."""
    try:
        size = os.path.getsize(path)
    except OSError as error:
        raise gr.Error(f"The upload could not be read ({error.strerror}).") from error
    if size > MAX_UPLOAD_BYTES:
        raise gr.Error(f"That file is {size / 2**20:.0f} MB; please upload an image under {MAX_UPLOAD_BYTES // 2**20} MB.")
    try:
        return load_image(path, model.config)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as error:
        raise gr.Error("That image has too many pixels to decode safely; please upload a smaller photo or an eye crop.") from error
    except Exception as error:  # noqa: BLE001 - any undecodable file gets the same advice
        logger.info("unreadable upload %s: %s", path, error)
        raise gr.Error("That file is not an image we can read. Please upload a PNG, JPEG or WebP photo of an eye.") from error


# ---------------------------------------------------------------- the page

MAP_SCRIPT = Path(__file__).with_name("ui_map.js")  # the map's browser code (package data)
MAP_CSS = """
.vaegan-map { width: 100%; height: min(68vh, 560px); min-height: 360px; }
.vaegan-map-note { font-size: var(--text-sm); color: var(--body-text-color-subdued); margin: 4px 2px 0; }
"""

INTRO = """
# Eyes VAE-GAN explorer
A VAE-GAN encodes each 64x64 grayscale eye crop as a {latent_dim}-number latent vector and decodes latents back into eyes.
**Click the map** to decode an eye, **upload** a photo to encode it, **interpolate** between two eyes,
push an eye toward **open or closed**, or **sample** new eyes from the prior.
"""


def plotly_js_path() -> Path:
    """The plotly.js bundled with the installed `plotly` package (served locally: no CDN)."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def build_demo(model: VAEGAN, latent_map: LatentMap | None) -> gr.Blocks:
    """The explorer page for a model and its latent map (None: the page without the map)."""
    explorer = Explorer(model, latent_map)
    examples = write_examples(explorer.work_dir)
    first, second = explorer.initial_state()["eyes"]
    state0, eye_picture, eye_caption, _, _, pair_caption = explorer._show({"eyes": [first]}, second)
    has_map = latent_map is not None
    if has_map:
        plotly_js = plotly_js_path()
        gr.set_static_paths([str(plotly_js)])

    def get_points(_args: Any = None) -> dict[str, Any]:  # a plain function: Gradio marks it as a server function
        """The map's points for the browser (a server function: JS arguments arrive as one argument)."""
        return points_payload(latent_map)

    # Every decoded picture is written to Gradio's cache: clear files older than an hour every 30 min,
    # or a busy page fills the disk (each slider position and upload is a new file).
    with gr.Blocks(title="Eyes VAE-GAN explorer", delete_cache=(1800, 3600)) as demo:
        state = gr.State(state0)
        samples = gr.State(None)
        intro = INTRO.format(latent_dim=model.config.latent_dim)
        gr.Markdown(intro if has_map else intro.replace("**Click the map** to decode an eye, ", ""))
        if not has_map:
            gr.Markdown("*This model has no latent map, so there is no map to click and no open / closed probe. "
                        "Upload, interpolation and sampling still work.*")
            plot = gr.State(None)  # sink for the map annotations
        with gr.Row(equal_height=False):
            if has_map:
                with gr.Column(scale=3, min_width=320):
                    plot = gr.HTML(
                        html_template='<div class="vaegan-map"></div><p class="vaegan-map-note">Loading the latent map…</p>',
                        css_template=MAP_CSS,
                        js_on_load=MAP_SCRIPT.read_text(encoding="utf-8"),
                        head=f'<script src="gradio_api/file={plotly_js}"></script>',
                        server_functions=[get_points],
                        elem_id="latent-map",
                        marks=explorer.marks(state0["eyes"]),
                        min_height=400,
                    )
            with gr.Column(scale=2, min_width=280):
                eye_image = gr.Image(eye_picture, label="Current eye (B)", format="png", height=DISPLAY_SIZE + 24,
                                     interactive=False, buttons=["download"], elem_id="current-eye")
                eye_text = gr.Markdown(eye_caption, elem_id="current-caption")
                slider = gr.Slider(-SLIDER_RANGE, SLIDER_RANGE, value=0.0, step=0.1, label="closed ←  → open",
                                   info="Moves the current eye along the direction from the mean closed to the mean open latent.",
                                   visible=has_map, elem_id="open-slider")
        with gr.Tabs():
            with gr.Tab("Upload", id="upload"):
                gr.Markdown("Upload a photo of one eye, ideally cropped like the examples. It is converted to 64x64 grayscale "
                            "as in training, encoded, decoded, placed on the map and classified open / closed.")
                with gr.Row():
                    upload = gr.Image(label="Eye photo", type="filepath", sources=["upload", "clipboard"], height=280,
                                      elem_id="upload-image")
                    seen = gr.Image(label="What the model sees (64x64)", format="png", interactive=False, height=280,
                                    buttons=["download"])
                    reconstruction = gr.Image(label="Reconstruction", format="png", interactive=False, height=280,
                                              buttons=["download"], elem_id="reconstruction")
                upload_text = gr.Markdown(elem_id="upload-caption")
                gr.Examples(examples, inputs=upload, label="Drawn example eyes (not real photos)", elem_id="examples")
            with gr.Tab("Interpolate", id="interpolate"):
                gr.Markdown("A and B are the last two eyes you clicked, uploaded or sampled. The path between their latents "
                            "follows the sphere (slerp), where prior samples live.")
                with gr.Row(equal_height=True):
                    pair_text = gr.Markdown(pair_caption, elem_id="pair-caption")
                    steps = gr.Slider(3, 16, value=8, step=1, label="Frames")
                    interpolate = gr.Button("Interpolate A → B", variant="primary", elem_id="interpolate-button")
                strip = gr.Image(label="A → B", format="png", interactive=False, buttons=["download"], elem_id="strip")
                gif = gr.File(label="Animated GIF", elem_id="gif")
            with gr.Tab("Sample", id="sample"):
                gr.Markdown("Decode latents drawn from the prior N(0, I). The same seed always gives the same grid. "
                            "Click a sample to make it the current eye" + ("; its nearest real eye is marked on the map." if has_map else "."))
                with gr.Row():
                    seed = gr.Number(0, label="Seed", precision=0, minimum=0, elem_id="seed")
                    sample = gr.Button("Sample", variant="primary", elem_id="sample-button")
                gallery = gr.Gallery(label="Prior samples", columns=8, rows=2, height=340, allow_preview=False,
                                     elem_id="samples", format="png")

        new_eye = [state, eye_image, eye_text, slider, plot, pair_text]
        quick = {"show_progress": "hidden", "trigger_mode": "always_last"}
        if has_map:
            plot.point_click(explorer.on_point, inputs=[state], outputs=new_eye, **quick)
            plot.map_click(explorer.on_map_click, inputs=[state], outputs=new_eye, **quick)
        upload.change(explorer.on_upload, inputs=[upload, state], outputs=[seen, reconstruction, upload_text, *new_eye],
                      preprocess=False, show_progress_on=[reconstruction])
        slider.input(explorer.on_slider, inputs=[slider, state], outputs=[eye_image, eye_text], **quick)
        interpolate.click(explorer.on_interpolate, inputs=[steps, state], outputs=[strip, gif], show_progress_on=[strip])
        sample.click(explorer.on_sample, inputs=[seed, state], outputs=[gallery, samples, *new_eye], show_progress_on=[gallery])
        gallery.select(explorer.on_sample_select, inputs=[samples, state], outputs=new_eye, show_progress="hidden")
        if has_map:  # the map's click events carry their data outside the API: an endpoint for clients, no trigger
            with gr.Group(visible=False):  # components the API needs in the page config, never shown
                api_index = gr.Number(label="index", precision=0)
                api_outputs = [gr.Image(label="eye", format="png"), gr.JSON(label="point")]
            gr.on([], explorer.decode_point, inputs=api_index, outputs=api_outputs, api_name="decode_point")
    demo.explorer = explorer  # for tests and benchmarks
    return demo
