"""The Gradio page: a clickable latent map, upload-and-encode, interpolation, sampling and an open <-> closed slider.

`build_demo(model, latent_map)` returns the page (launch it with `launch_options()`). The callbacks
are methods of `Explorer`, which tests call directly: each returns a small named result
(`EyeResult`, `UploadResult`, ...) that `build_demo` maps to a dict keyed by component.

The map is a plotly.js WebGL scatter inside a `gr.HTML` (Gradio's own plot components give no
clicked point): plotly.js comes from the installed `plotly` package, the browser code is
`ui_map.js` beside this file, the points are fetched once through a server function as base64
float32, and clicks come back as the custom events `point_click` / `map_click`. API clients decode a map point through the endpoint
`/decode_point`.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
import os
import re
import tempfile
from dataclasses import dataclass
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
from vaegan.config import ModelConfig
from vaegan.networks import VAEGAN

logger = logging.getLogger(__name__)

DISPLAY_SIZE = 256  # pixels of the shown eyes: the model's crop upscaled
THUMB_SIZE = 128
MAX_UPLOAD_BYTES = 20 * 1024 * 1024
SAMPLE_COUNT = 16
SAMPLE_SOURCES = {  # where the Sample tab draws latents from: its radio's labels, and how a sample's caption says it
    "mixture": ("the training eyes' latent mixture", "drawn from the Gaussian mixture fitted to the training eyes' latents"),
    "prior": ("the prior N(0, I)", "drawn from the prior"),
}
SLIDER_RANGE = 2.0  # in units of open_direction (the distance between the class means)
COLOURS = {"A": "#c026d3", "B": "#059669"}

LABEL_OFFSET = (16, 30)  # pixels from a map mark to its label's near corner, in x and y
EMPTY_STATE: dict[str, Any] = {"eyes": [], "uploads": 0}


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


# ---------------------------------------------------------------- callbacks and their results


@dataclass(frozen=True)
class EyeResult:
    """What every 'new eye' event shows; `build_demo` maps each field to its component (the slider goes back to 0)."""

    state: dict[str, Any]  # the session: the last two eyes (A, B) and the number of uploads so far
    picture: str  # path of the current eye's PNG
    caption: str  # Markdown under the current eye
    marks: list[dict[str, Any]] | None  # A / B annotations for the map; None without a map
    pair: str  # Markdown naming A and B, above the Interpolate button


@dataclass(frozen=True)
class UploadResult:
    """An encoded upload: what the encoder saw, its reconstruction, the open / closed verdict, and the new eye."""

    seen: str
    reconstruction: str
    verdict: str
    eye: EyeResult


@dataclass(frozen=True)
class SampleResult:
    """A grid of prior samples (picture path, caption), the latents behind it, and the first sample as the new eye."""

    gallery: list[tuple[str, str]]
    samples: dict[str, Any]  # {"seed": int, "source": "mixture" or "prior", "z": (S, Z)}
    eye: EyeResult


@dataclass(frozen=True)
class MovedEye:
    """The current eye moved along the open direction: its picture and caption (the state is unchanged)."""

    picture: str
    caption: str


@dataclass(frozen=True)
class Interpolation:
    """The A -> B path: a strip of frames and an animated GIF (paths)."""

    strip: str
    gif: str


class Explorer:
    """The page's callbacks, testable without a page: they take plain values and return the results above.

    Everything runs on the model's device (inputs are moved there, results come back as numpy), and
    the pictures are PNG / GIF files written to `picture_dir`: a folder of its own in `picture_parent` where one
    is given (build_demo gives Gradio's cache, from where the page serves them as they are), else under work_dir.
    """

    def __init__(self, model: VAEGAN, latent_map: LatentMap | None, work_dir: str | os.PathLike | None = None,
                 picture_parent: str | os.PathLike | None = None):
        self.model = model.eval()
        self.device = next(model.parameters()).device
        self.latent_map = latent_map
        # folders of our own are removed with the Explorer (or at exit), so page starts and tests leave nothing behind
        self._own_dir = None if work_dir else tempfile.TemporaryDirectory(prefix="vaegan-ui-", ignore_cleanup_errors=True)
        self.work_dir = Path(work_dir or self._own_dir.name)
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self._own_pictures = None if picture_parent is None else tempfile.TemporaryDirectory(
            prefix="vaegan-", dir=picture_parent, ignore_cleanup_errors=True)
        self.picture_dir = Path(self._own_pictures.name) if self._own_pictures else self.work_dir / "pictures"
        self.picture_dir.mkdir(parents=True, exist_ok=True)
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
        """Annotations for the map: where A and B (the last two eyes) are, labelled so that the labels never overlap.

        Of two marks, the upper one's label goes above it and the lower one's below (A's below where
        they coincide), each box anchored at its edge nearest the mark: one box lies wholly above the
        other, however close the eyes are and however the map is zoomed. Each label leans toward the
        middle of the map, where there is room for it.
        """
        if self.latent_map is None:
            return []
        tagged = [(tag, eye) for tag, eye in zip(("A", "B")[-len(eyes):] if eyes else (), eyes) if eye["where"] is not None]
        middle = float(self.latent_map.xy[:, 0].min() + self.latent_map.xy[:, 0].max()) / 2
        out = []
        for tag, eye in tagged:
            x, y = eye["where"]
            other = next((o["where"] for t, o in tagged if t != tag), None)
            up = True if other is None else (y > other[1] or (y == other[1] and tag == "B"))
            right = x <= middle
            out.append({"x": x, "y": y, "text": f"{tag}: {eye['name']}", "color": COLOURS[tag],
                        "ax": LABEL_OFFSET[0] if right else -LABEL_OFFSET[0],
                        "ay": -LABEL_OFFSET[1] if up else LABEL_OFFSET[1],  # pixels: screen y grows downwards
                        "xanchor": "left" if right else "right", "yanchor": "bottom" if up else "top"})
        return out

    def show(self, state: dict[str, Any] | None, eye: dict[str, Any]) -> EyeResult:
        """Make `eye` the current one (B; the previous B becomes A)."""
        state = state or EMPTY_STATE
        eyes = (state["eyes"] + [eye])[-2:]
        pair = (f"**A:** {eyes[0]['name']} &nbsp;→&nbsp; **B:** {eyes[-1]['name']}" if len(eyes) == 2
                else f"**B:** {eyes[-1]['name']}. Pick one more eye for A.")
        marks = self.marks(eyes) if self.latent_map is not None else None
        return EyeResult({**state, "eyes": eyes}, self.picture(eye["image"]), eye["caption"], marks, pair)

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

    def on_point(self, state: dict[str, Any] | None, evt: gr.EventData) -> EyeResult:
        """A click on a map point: decode that point's mu."""
        return self.show(state, self._map_eye(evt.index))

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

    def on_map_click(self, state: dict[str, Any] | None, evt: gr.EventData) -> EyeResult:
        """A click on empty map space: decode the inverse-distance blend of the nearest points' latents."""
        if self.latent_map is None:
            raise gr.Error("This model has no latent map.")
        x, y = float(evt.x), float(evt.y)
        z, nearest = self.latent_map.latent_at(x, y)
        labels = self.latent_map.labels[nearest]
        caption = (f"**Blend of the {len(nearest)} eyes nearest to ({x:.2f}, {y:.2f})** "
                   f"({int((labels == 1).sum())} open, {int((labels == 0).sum())} closed). {self._probe_text(z)}")
        return self.show(state, self._eye(f"blend at ({x:.1f}, {y:.1f})", z, caption, (x, y)))

    @torch.no_grad()
    def on_upload(self, upload: Any, state: dict[str, Any] | None) -> UploadResult | None:
        """An uploaded photo: preprocess as in training, encode, reconstruct, place on the map, predict.

        None when nothing changes: the upload was cleared, or is the file of the current eye. Uploads
        are named "upload N (file name)" so that A and B can be told apart.
        """
        path = _upload_path(upload)
        state = state or EMPTY_STATE
        if path is None or (state["eyes"] and state["eyes"][-1].get("file") == path):
            return None  # cleared, or the current eye already: after an example, Gradio reports a new upload twice
        x = read_upload(path, self.model)  # (C, H, W) on the CPU
        mu, _ = self.model.encode(x[None].to(self.device))  # (1, Z)
        z = mu[0].cpu().numpy().astype(np.float32)
        where = self.latent_map.place(z[None])[0] if self.latent_map is not None else None
        seen = to_uint8(x).permute(1, 2, 0).numpy()  # (H, W, C) what the encoder saw
        number = state.get("uploads", 0) + 1
        name = f"upload {number}" + (f" ({file})" if (file := _upload_name(upload, path)) else "")
        p = self.probability(z)
        verdict = f"Predicted **{LABEL_NAMES[int(p >= 0.5)]}** (P(open) = {p:.2f})." if p is not None else (
            "No open / closed prediction: this model has no latent map.")
        eye = {**self._eye(name, z, f"**Your {name}**, reconstructed. {verdict}", where), "file": path}
        return UploadResult(self.picture(seen), self.picture(eye["image"]), verdict,
                            self.show({**state, "uploads": number}, eye))

    def on_slider(self, amount: float, state: dict[str, Any] | None) -> MovedEye | None:
        """Move the current eye along the closed -> open direction by `amount` and decode it; None without an eye."""
        eyes = (state or EMPTY_STATE)["eyes"]
        if not eyes:
            return None
        eye = eyes[-1]
        if self.open_direction is None or amount == 0:
            return MovedEye(self.picture(eye["image"]), eye["caption"])
        z = eye["z"] + float(amount) * self.open_direction
        direction = "open" if amount > 0 else "closed"
        caption = f"**{eye['name']}**, moved {abs(amount):.1f} × toward **{direction}**. {self._probe_text(z)}"
        return MovedEye(self.picture(decode(self.model, z)[0]), caption)

    def on_interpolate(self, steps: int, state: dict[str, Any] | None) -> Interpolation:
        """Decode the slerp path from A to B: a strip of frames and an animated GIF."""
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
        return Interpolation(save_picture(strip, self.picture_dir, "interpolation-strip"), gif)

    @property
    def default_source(self) -> str:
        """Where samples come from unless the user picks: the latent mixture when the map has one, else the prior."""
        return "mixture" if self.latent_map is not None and self.latent_map.has_mixture else "prior"

    def sample_latents(self, seed: int | float | None, source: str = "prior") -> np.ndarray:
        """SAMPLE_COUNT latents (S, Z) from the prior N(0, I) or the map's latent mixture, seeded by an explicit generator."""
        generator = torch.Generator().manual_seed(int(seed or 0))
        if source == "mixture":
            if self.latent_map is None or not self.latent_map.has_mixture:
                raise gr.Error("This model's latent map has no mixture to sample from (a map made before maps had one): "
                               "sample from the prior.")
            return self.latent_map.sample_mixture(SAMPLE_COUNT, generator)
        return torch.randn(SAMPLE_COUNT, self.model.config.latent_dim, generator=generator).numpy()

    def on_sample(self, seed: int | float | None, state: dict[str, Any] | None, source: str | None = None) -> SampleResult:
        """A grid of samples for a seed, from `source` ("mixture" or "prior"; default: default_source); the first becomes the current eye."""
        if seed is None or not np.isfinite(seed) or seed < 0:
            raise gr.Error("The seed must be a whole number from 0 upwards.")
        gallery, samples, images = self.sample_grid(seed, source)
        return SampleResult(gallery, samples, self.show(state, self._sample_eye(samples, 0, images[0])))

    def sample_grid(self, seed: int | float, source: str | None = None) -> tuple[list[tuple[str, str]], dict[str, Any], np.ndarray]:
        """The grid of a seed's samples (picture path, caption), its latents, and the decoded images; no eye changes."""
        source = source or self.default_source
        if source not in SAMPLE_SOURCES:
            raise gr.Error(f"Samples come from {' or '.join(SAMPLE_SOURCES)}, not {source!r}.")
        z = self.sample_latents(seed, source)
        images = decode(self.model, z)
        gallery = [(self.picture(image, THUMB_SIZE), f"sample {i + 1}") for i, image in enumerate(images)]
        return gallery, {"seed": int(seed), "source": source, "z": z}, images

    def on_sample_select(self, samples: dict[str, Any] | None, state: dict[str, Any] | None, evt: gr.SelectData) -> EyeResult:
        """A sample picked in the grid becomes the current eye."""
        if not samples:
            raise gr.Error("Draw samples first.")
        return self.show(state, self._sample_eye(samples, int(evt.index)))

    def _sample_eye(self, samples: dict[str, Any], index: int, image: np.ndarray | None = None) -> dict[str, Any]:
        z = samples["z"][index]
        name = f"sample {index + 1} (seed {samples['seed']})"
        where, extra = None, ""
        if self.latent_map is not None:
            near = self.latent_map.nearest(z)
            where = self.latent_map.xy[near]
            # a sample has no label of its own: the map's label is that of the real eye it lies closest to
            extra = (f" Nearest real eye: #{near}, the closest latent on the map, marked there to show where the sample lies; "
                     f"its label ({LABEL_NAMES[int(self.latent_map.labels[near])]}) is that eye's, not the sample's.")
        drawn = SAMPLE_SOURCES[samples.get("source", "prior")][1]
        caption = f"**{name.capitalize()}**, {drawn}. {self._probe_text(z)}{'.' if extra else ''}{extra}"
        return self._eye(name, z, caption, where, image)

    def initial_state(self) -> dict[str, Any]:
        """Two eyes to start with: the most confidently closed and open map points, or two prior samples."""
        if self.latent_map is None:
            samples = {"seed": 0, "source": "prior", "z": self.sample_latents(0)}
            return {"eyes": [self._sample_eye(samples, 0), self._sample_eye(samples, 1)], "uploads": 0}
        p = self.latent_map.predict_open(self.latent_map.mu)
        return {"eyes": [self._map_eye(int(np.argmin(p))), self._map_eye(int(np.argmax(p)))], "uploads": 0}

    def initial_view(self) -> EyeResult:
        """What the page shows before any event: the initial two eyes as A and B."""
        first, second = self.initial_state()["eyes"]
        return self.show({"eyes": [first], "uploads": 0}, second)


def _upload_path(upload: Any) -> str | None:
    """The file path of an upload, whether a path, a dict or a Gradio FileData."""
    if upload is None:
        return None
    if isinstance(upload, (str, os.PathLike)):
        return str(upload)
    if isinstance(upload, dict):
        return upload.get("path")
    return getattr(upload, "path", None)


def _upload_name(upload: Any, path: str) -> str:
    """The uploaded file's own name, made safe for Markdown and the map (letters, digits, `._-`), at most 32 characters."""
    name = upload.get("orig_name") if isinstance(upload, dict) else getattr(upload, "orig_name", None)
    name = re.sub(r"[^\w.\-]+", "_", Path(name or path).name)
    return name if len(name) <= 32 else name[:14] + "…" + name[-14:]


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
# Gradio 6.31's default theme declares "Source Sans Pro" at weight 600 from a file that holds only
# "A", "B", the space and some Cyrillic: in bold text every other letter falls back to the system
# font, so "VAE-GAN" and "A → B" showed smaller A's and B's (online as well as offline). System
# fonts need no file and render every letter from one font.
SYSTEM_FONTS = ("system-ui", "-apple-system", "Segoe UI", "Roboto", "Helvetica Neue", "Noto Sans", "Liberation Sans",
                "Arial", "sans-serif")
MONO_FONTS = ("ui-monospace", "SFMono-Regular", "Menlo", "Consolas", "Liberation Mono", "monospace")
PAGE_CSS = """
/* The sample number stays the thumbnail's accessible name, out of sight: as a label it covered the eye. */
#samples .caption-label { position: absolute; width: 1px; height: 1px; padding: 0; margin: -1px; overflow: hidden;
  clip: rect(0 0 0 0); border: 0; }
/* On a phone, 4 samples to a row (Gradio's columns=8 would run off the screen), the grid as tall as it needs. */
@media (max-width: 640px) {
  #samples, #samples .gallery-container, #samples .grid-wrap { height: auto !important; }
  #samples .grid-container { grid-template-columns: repeat(4, minmax(0, 1fr)); grid-template-rows: none; grid-auto-rows: auto; }
  #samples .thumbnail-item { height: auto; }
}
"""
# Gradio highlights the example under the pointer and keeps it highlighted until the pointer leaves;
# a file dropped, pasted or picked on a touch screen never moves it away. A new upload ends it.
UNHIGHLIGHT_EXAMPLES = """() => {
  document.querySelectorAll('#examples .gallery-item').forEach(item => item.dispatchEvent(new MouseEvent('mouseleave')));
}"""

INTRO = """
# Eyes VAE-GAN explorer
A VAE-GAN encodes each {image} eye crop as a {latent_dim}-number latent vector and decodes latents back into eyes.
**Click the map** to decode an eye, **upload** a photo to encode it, **interpolate** between two eyes,
push an eye toward **open or closed**, or **sample** new eyes.
"""


def image_kind(config: ModelConfig) -> str:
    """The model's input in words, e.g. "64x64 grayscale" or "128x128 RGB"."""
    return f"{config.image_size}x{config.image_size} {'grayscale' if config.channels == 1 else 'RGB'}"


def plotly_js_path() -> Path:
    """The plotly.js bundled with the installed `plotly` package (served locally: no CDN)."""
    import plotly

    return Path(plotly.__file__).parent / "package_data" / "plotly.min.js"


def launch_options() -> dict[str, Any]:
    """Keyword arguments of `demo.launch` that belong to the page (Gradio 6 takes the theme and CSS at launch)."""
    theme = gr.themes.Default(font=list(SYSTEM_FONTS), font_mono=list(MONO_FONTS))
    return {"theme": theme, "css": PAGE_CSS, "max_file_size": MAX_UPLOAD_BYTES}


def build_demo(model: VAEGAN, latent_map: LatentMap | None) -> gr.Blocks:
    """The explorer page for a model and its latent map (None: the page without the map); launch it with `launch_options()`."""
    cache = Path(get_upload_folder())  # Gradio serves files from its cache folder as they are
    cache.mkdir(parents=True, exist_ok=True)
    explorer = Explorer(model, latent_map, picture_parent=cache)
    examples = write_examples(explorer.work_dir)
    start = explorer.initial_view()
    has_map = latent_map is not None
    image = image_kind(model.config)
    if has_map:
        plotly_js = plotly_js_path()
        gr.set_static_paths([str(plotly_js)])

    def get_points(_args: Any = None) -> dict[str, Any]:  # a plain function: Gradio marks it as a server function
        """The map's points for the browser (a server function: JS arguments arrive as one argument)."""
        return points_payload(latent_map)

    # Every decoded picture is written to Gradio's cache: clear files older than an hour every 30 min,
    # or a busy page fills the disk (each slider position and upload is a new file).
    with gr.Blocks(title="Eyes VAE-GAN explorer", delete_cache=(1800, 3600)) as demo:
        state = gr.State(start.state)
        first_grid, first_samples, _ = explorer.sample_grid(0)  # the Sample tab opens on seed 0's grid, ready to pick from
        samples = gr.State(first_samples)
        intro = INTRO.format(image=image, latent_dim=model.config.latent_dim)
        gr.Markdown(intro if has_map else intro.replace("**Click the map** to decode an eye, ", ""))
        if not has_map:
            gr.Markdown("*This model has no latent map, so there is no map to click and no open / closed probe. "
                        "Upload, interpolation and sampling still work.*")
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
                        marks=start.marks,
                        min_height=400,
                    )
            with gr.Column(scale=2, min_width=280):
                eye_image = gr.Image(start.picture, label="Current eye (B)", format="png", height=DISPLAY_SIZE + 24,
                                     interactive=False, buttons=["download"], elem_id="current-eye")
                eye_text = gr.Markdown(start.caption, elem_id="current-caption")
                slider = gr.Slider(-SLIDER_RANGE, SLIDER_RANGE, value=0.0, step=0.1, label="closed ←  → open",
                                   info="Moves the current eye along the direction from the mean closed to the mean open latent.",
                                   visible=has_map, elem_id="open-slider")
        with gr.Tabs():
            with gr.Tab("Upload", id="upload"):
                gr.Markdown(f"Upload a photo of one eye, ideally cropped like the examples. It is converted to {image} "
                            "as in training, encoded, decoded, placed on the map and classified open / closed.")
                # the upload on its own, the two results side by side: on a phone they stack as 1 + 2, not 2 + 1
                with gr.Row(elem_id="upload-row"):
                    with gr.Column(scale=1, min_width=240):
                        upload = gr.Image(label="Eye photo", type="filepath", sources=["upload", "clipboard"], height=280,
                                          elem_id="upload-image")
                    with gr.Column(scale=2, min_width=330):
                        with gr.Row():
                            seen = gr.Image(label=f"What the model sees ({model.config.image_size}x{model.config.image_size})",
                                            format="png", interactive=False, height=280, buttons=["download"], elem_id="seen")
                            reconstruction = gr.Image(label="Reconstruction", format="png", interactive=False, height=280,
                                                      buttons=["download"], elem_id="reconstruction")
                upload_text = gr.Markdown(elem_id="upload-caption")
                gr.Examples(examples, inputs=upload, label="Drawn example eyes (not real photos)", elem_id="examples")
            with gr.Tab("Interpolate", id="interpolate"):
                gr.Markdown("A and B are the last two eyes you clicked, uploaded or sampled. The path between their latents "
                            "follows the sphere (slerp), where prior samples live.")
                with gr.Row(equal_height=True):  # columns wide enough that on a phone each takes a row of its own
                    with gr.Column(scale=2, min_width=300):
                        pair_text = gr.Markdown(start.pair, elem_id="pair-caption")
                    with gr.Column(scale=1, min_width=200):
                        steps = gr.Slider(3, 16, value=8, step=1, label="Frames")
                    with gr.Column(scale=1, min_width=200):
                        interpolate = gr.Button("Interpolate A → B", variant="primary", elem_id="interpolate-button")
                strip = gr.Image(label="A → B", format="png", interactive=False, buttons=["download"], elem_id="strip")
                gif = gr.File(label="Animated GIF", elem_id="gif")
            with gr.Tab("Sample", id="sample"):
                has_mixture = explorer.default_source == "mixture"
                why_mixture = ("From the prior N(0, I), some land where no training eye's latent lies and decode to mottled "
                               "non-eyes; the latent mixture (10 Gaussians fitted to the training eyes' latents, Ghosh et al. "
                               "2020) draws where eyes are. ") if has_mixture else ""
                gr.Markdown("Decode new latents. " + why_mixture
                            + "The same seed always gives the same grid. Click a sample to make it the current eye"
                            + ("; the real eye whose latent is closest to it is marked on the map." if has_map else "."))
                with gr.Row():
                    seed = gr.Number(0, label="Seed", precision=0, minimum=0, elem_id="seed")
                    source = gr.Radio([(label, key) for key, (label, _) in SAMPLE_SOURCES.items()], value=explorer.default_source,
                                      label="Draw from", visible=has_mixture, elem_id="sample-source")
                    sample = gr.Button("Sample", variant="primary", elem_id="sample-button")
                gallery = gr.Gallery(first_grid, label="Samples", columns=8, rows=2, height=340, allow_preview=False,
                                     elem_id="samples", format="png")

        # ---- the results mapped to components: a dict keyed by component, so no order can drift
        new_eye = [state, eye_image, eye_text, slider, pair_text] + ([plot] if has_map else [])

        def eye_outputs(result: EyeResult) -> dict:
            outputs = {state: result.state, eye_image: result.picture, eye_text: result.caption, slider: 0.0,
                       pair_text: result.pair}
            if has_map:
                outputs[plot] = gr.update(marks=result.marks)
            return outputs

        def on_point(state_value: dict[str, Any] | None, evt: gr.EventData) -> dict:
            return eye_outputs(explorer.on_point(state_value, evt))

        def on_map_click(state_value: dict[str, Any] | None, evt: gr.EventData) -> dict:
            return eye_outputs(explorer.on_map_click(state_value, evt))

        def on_upload(file: Any, state_value: dict[str, Any] | None) -> dict:
            result = explorer.on_upload(file, state_value)
            if result is None:  # the upload was cleared
                return gr.skip()
            return {seen: result.seen, reconstruction: result.reconstruction, upload_text: result.verdict,
                    **eye_outputs(result.eye)}

        def on_slider(amount: float, state_value: dict[str, Any] | None) -> dict:
            result = explorer.on_slider(amount, state_value)
            return gr.skip() if result is None else {eye_image: result.picture, eye_text: result.caption}

        def on_interpolate(frames: int, state_value: dict[str, Any] | None) -> dict:
            result = explorer.on_interpolate(frames, state_value)
            return {strip: result.strip, gif: result.gif}

        def on_sample(seed_value: float | None, state_value: dict[str, Any] | None, source_value: str | None = None) -> dict:
            result = explorer.on_sample(seed_value, state_value, source_value)
            return {gallery: result.gallery, samples: result.samples, **eye_outputs(result.eye)}

        def on_sample_select(samples_value: dict[str, Any] | None, state_value: dict[str, Any] | None,
                             evt: gr.SelectData) -> dict:
            return eye_outputs(explorer.on_sample_select(samples_value, state_value, evt))

        quick = {"show_progress": "hidden", "trigger_mode": "always_last"}
        if has_map:
            plot.point_click(on_point, inputs=[state], outputs=new_eye, **quick)
            plot.map_click(on_map_click, inputs=[state], outputs=new_eye, **quick)
        upload.change(on_upload, inputs=[upload, state], outputs=[seen, reconstruction, upload_text, *new_eye],
                      preprocess=False, show_progress_on=[reconstruction])
        upload.upload(None, js=UNHIGHLIGHT_EXAMPLES)
        slider.input(on_slider, inputs=[slider, state], outputs=[eye_image, eye_text], **quick)
        interpolate.click(on_interpolate, inputs=[steps, state], outputs=[strip, gif], show_progress_on=[strip])
        sample.click(on_sample, inputs=[seed, state, source], outputs=[gallery, samples, *new_eye], show_progress_on=[gallery])
        gallery.select(on_sample_select, inputs=[samples, state], outputs=new_eye, show_progress="hidden")
        if has_map:  # the map's click events carry their data outside the API: an endpoint for clients, no trigger
            with gr.Group(visible=False):  # components the API needs in the page config, never shown
                api_index = gr.Number(label="index", precision=0)
                api_outputs = [gr.Image(label="eye", format="png"), gr.JSON(label="point")]
            gr.on([], explorer.decode_point, inputs=api_index, outputs=api_outputs, api_name="decode_point")
    demo.explorer = explorer  # for tests and benchmarks
    return demo
