"""The Hub, offline: loading from a pre-filled cache, the push with its upload intercepted, the model card."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from huggingface_hub import HfApi
from huggingface_hub.errors import HfHubHTTPError
from safetensors.torch import load_file, save_file

import train
from conftest import free_port
from vaegan import VAEGAN, ModelConfig, card, hub
from vaegan.latent_map import LatentMap
from vaegan.networks import DISCRIMINATOR_FILE, Discriminator

ROOT = Path(__file__).resolve().parents[1]
TINY = ModelConfig(image_size=32, base_channels=8, latent_dim=8)


def tiny_model_dir(path: Path) -> Path:
    torch.manual_seed(0)
    model = VAEGAN(TINY).eval()
    model.save_pretrained(path)
    rng = np.random.default_rng(0)
    LatentMap(
        mu=rng.normal(size=(20, 8)).astype(np.float32),
        xy=rng.normal(size=(20, 2)).astype(np.float32),
        labels=np.arange(20) % 2,
        probe_weight=np.ones(8, np.float32),
        probe_bias=np.zeros(1, np.float32),
        open_direction=np.ones(8, np.float32),
    ).save(path)
    card.write_model_card(path, {"command": "python train.py --epochs 1"}, {"recon_ssim": 0.5})
    return path


def fill_hf_cache(cache: Path, repo_id: str, files: Path) -> None:
    """Lay out files as huggingface_hub's cache does after a download of repo_id."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / ("models--" + repo_id.replace("/", "--"))
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for path in files.iterdir():
        if path.is_file():
            (snapshot / path.name).write_bytes(path.read_bytes())


LOAD_SCRIPT = """
import sys, torch
from vaegan.hub import load_model, HubError
try:
    model, latent_map = load_model(sys.argv[1])
except HubError as error:
    print("HubError:", error); sys.exit(3)
torch.save({"out": model.decode(torch.ones(2, model.config.latent_dim)), "map": len(latent_map)}, sys.argv[2])
"""


def offline_load(tmp_path, cache, source):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_HUB_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
    out = tmp_path / "out.pt"
    result = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, source, str(out)], env=env, capture_output=True, text=True, timeout=120)
    return result, out


def test_repo_id_loads_from_a_filled_cache_offline_with_identical_outputs(tmp_path):
    model_dir = tiny_model_dir(tmp_path / "model")
    cache = tmp_path / "hf-cache"
    fill_hf_cache(cache, "someone/eyes-vaegan", model_dir)
    result, out = offline_load(tmp_path, cache, "someone/eyes-vaegan")
    assert result.returncode == 0, result.stdout + result.stderr
    loaded = torch.load(out, weights_only=True)
    expected = VAEGAN.from_pretrained(model_dir, strict=True).eval().decode(torch.ones(2, 8))
    assert torch.equal(loaded["out"], expected) and loaded["map"] == 20


def load_against(tmp_path, cache, source, endpoint):
    """Load in a fresh process whose Hub endpoint is `endpoint` (not offline mode): what a user sees."""
    env = {**os.environ, "HF_ENDPOINT": endpoint, "HF_HUB_CACHE": str(cache), "PYTHONPATH": str(ROOT)}
    env.pop("HF_HUB_OFFLINE", None)
    out = tmp_path / "out.pt"
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, source, str(out)], env=env, capture_output=True, text=True, timeout=120)
    return result, out, time.monotonic() - started


@pytest.fixture
def fake_hub():
    """A local stand-in for the Hub that answers every request as the Hub answers for a repo that does not exist."""
    import http.server
    import threading

    requests = []

    class Missing(http.server.BaseHTTPRequestHandler):
        def _answer(self):
            requests.append(self.path)
            body = b'{"error": "Repository Not Found"}'
            self.send_response(404)
            self.send_header("X-Error-Code", "RepoNotFound")
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body if self.command != "HEAD" else b"")

        do_GET = do_HEAD = _answer

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Missing)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", requests
    server.shutdown()


def test_missing_hub_repo_fails_at_once_with_one_line(tmp_path, fake_hub):
    endpoint, requests = fake_hub
    result, _, _ = load_against(tmp_path, tmp_path / "empty-cache", "someone/nonexistent-repo", endpoint)
    assert result.returncode == 3
    assert "no such local model dir or Hub repo" in result.stdout and "Retry" not in result.stdout + result.stderr
    about_the_repo = [path for path in requests if "nonexistent-repo" in path]
    assert len(about_the_repo) == 1 and about_the_repo[0].startswith("/api/models/")  # one call, no downloads, no retries


def test_unreachable_hub_loads_from_the_cache_or_says_so_in_one_line(tmp_path):
    refused = f"http://127.0.0.1:{free_port()}"  # nothing listens there: connection refused at once
    model_dir = tiny_model_dir(tmp_path / "model")
    cache = tmp_path / "hf-cache"
    fill_hf_cache(cache, "someone/eyes-vaegan", model_dir)
    result, out, _ = load_against(tmp_path, cache, "someone/eyes-vaegan", refused)
    assert result.returncode == 0, result.stdout + result.stderr
    assert torch.load(out, weights_only=True)["map"] == 20
    result, _, seconds = load_against(tmp_path, tmp_path / "empty-cache", "someone/not-cached", refused)
    assert result.returncode == 3 and "can't reach the Hugging Face Hub" in result.stdout
    assert "Retry" not in result.stdout + result.stderr and seconds < 60  # it was 38 s of retries before


def test_offline_without_cache_says_so(tmp_path):
    result, _ = offline_load(tmp_path, tmp_path / "empty-cache", "someone/not-cached")
    assert result.returncode == 3
    assert "HubError" in result.stdout and "offline" in result.stdout.lower()


@pytest.fixture
def intercepted(monkeypatch):
    """Replace the two network calls of a push; record what would go up."""
    monkeypatch.setenv("HF_TOKEN", "hf_test_token")
    calls = {}

    def create_repo(self, repo_id, private=False, exist_ok=False, **kwargs):
        calls["repo"] = (repo_id, private, exist_ok)

    def create_commit(self, repo_id, operations, commit_message=None, **kwargs):
        def content(op):
            return op.path_or_fileobj if isinstance(op.path_or_fileobj, bytes) else Path(op.path_or_fileobj).read_bytes()

        calls.setdefault("commits", []).append(
            {"repo_id": repo_id, "message": commit_message, "files": {op.path_in_repo: content(op) for op in operations}}
        )
        return type("CommitInfo", (), {"commit_url": f"https://huggingface.co/{repo_id}/commit/abc"})()

    monkeypatch.setattr(HfApi, "create_repo", create_repo)
    monkeypatch.setattr(HfApi, "create_commit", create_commit)
    return calls


def test_push_uploads_exactly_the_model_files(tmp_path, intercepted):
    model_dir = tiny_model_dir(tmp_path / "model")
    (model_dir / "images").mkdir()
    (model_dir / "images" / "samples.png").write_bytes(b"png")
    (model_dir / "notes.txt").write_text("local only")
    save_file(Discriminator(TINY).state_dict(), model_dir / DISCRIMINATOR_FILE)
    url = hub.push_model_dir(model_dir, "someone/eyes", private=True, commit_message="v1")
    assert url.endswith("/commit/abc")
    assert intercepted["repo"] == ("someone/eyes", True, True)
    commit = intercepted["commits"][0]
    assert sorted(commit["files"]) == [
        "README.md", "config.json", "discriminator.safetensors", "images/samples.png", "latent_map.safetensors", "model.safetensors",
    ]
    assert commit["message"] == "v1"
    assert commit["files"]["model.safetensors"] == (model_dir / "model.safetensors").read_bytes()
    hub.push_model_dir(model_dir, "someone/eyes")  # pushing twice updates the same repo
    assert [c["repo_id"] for c in intercepted["commits"]] == ["someone/eyes", "someone/eyes"]


def test_push_without_token_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setattr(hub, "get_token", lambda: None)
    with pytest.raises(hub.HubError, match="hf auth login"):
        hub.push_model_dir(tiny_model_dir(tmp_path / "model"), "someone/eyes")


@pytest.mark.parametrize("failure", [ConnectionError("Failed to resolve 'huggingface.co'"), "http"])
def test_failed_upload_is_one_line_and_keeps_the_model_dir(tmp_path, intercepted, monkeypatch, failure):
    model_dir = tiny_model_dir(tmp_path / "model")
    before = {p.name: p.read_bytes() for p in model_dir.iterdir() if p.is_file()}

    def reject(self, *args, **kwargs):
        if failure == "http":
            import httpx

            response = httpx.Response(403, request=httpx.Request("POST", "https://huggingface.co/api/x"))
            raise HfHubHTTPError("403 Forbidden: you don't have the rights to create a model under this namespace", response=response)
        raise failure

    monkeypatch.setattr(HfApi, "create_commit", reject)
    with pytest.raises(hub.HubError) as error:
        hub.push_model_dir(model_dir, "someone/eyes")
    assert "\n" not in str(error.value) and "unchanged" in str(error.value)
    assert {p.name: p.read_bytes() for p in model_dir.iterdir() if p.is_file()} == before


def test_hub_cli_exits_non_zero_on_failure(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(hub, "get_token", lambda: None)
    assert hub.main(["push", "--model", str(tiny_model_dir(tmp_path / "m")), "--repo-id", "a/b"]) == 1
    assert [r.levelname for r in caplog.records] == ["ERROR"] and "hf auth login" in caplog.text
    for command in (["push", "--repo-id", "a/b"], ["bundle", "--out", str(tmp_path / "bundle")]):
        caplog.clear()
        assert hub.main([*command, "--model", str(tmp_path / "missing")]) == 1
        assert "missing is not a model dir (missing config.json, model.safetensors)" in caplog.text
    assert not (tmp_path / "bundle").exists()


def test_model_card_from_a_real_run_has_its_metrics_and_metadata(eye_folder, tmp_path, intercepted):
    out = tmp_path / "run"
    argv = ["--data-dir", str(eye_folder), "--out-dir", str(out), "--image-size", "64", "--base-channels", "8",
            "--latent-dim", "8", "--batch-size", "8", "--epochs", "1", "--map-size", "20", "--push-to-hub", "someone/eyes"]
    assert train.main(argv) == 0
    text = (out / "model" / "README.md").read_text()
    front, body = text.split("---\n")[1], text.split("---\n", 2)[2]
    meta = yaml.safe_load(front)
    assert meta["library_name"] == "vaegan" and meta["license"] == "mit"
    assert meta["pipeline_tag"] == "unconditional-image-generation" and "vae-gan" in meta["tags"]
    metrics = json.loads((out / "model" / "metrics.json").read_text())
    assert f"{metrics['val_mse']:.4g}" in body and f"| active latent units | {metrics['active_units']} |" in body
    # the evaluation suite ran on the held-out fixture eyes, val + test (the bundled eye-feature CNN fits 64x64 grayscale)
    assert metrics["eval_images"] == 14
    for key, label in card.CARD_METRICS:
        if key in ("recon_ssim", "frechet_distance", "probe_accuracy", "label_preservation"):
            assert f"| {label} | {metrics[key]:.4g} |" in body
    assert set(meta["metrics"]) >= {"recon_ssim", "frechet_distance", "kid", "probe_accuracy"}
    for section in ("## Use", "## Training", "## Evaluation", "## Pictures"):
        assert section in body
    for picture in ("samples", "reconstructions", "interpolation", "latent_map"):
        assert f"images/{picture}.png" in body and (out / "model" / "images" / f"{picture}.png").exists()
    files = intercepted["commits"][0]["files"]
    assert "images/latent_map.png" in files and "metrics.json" in files
    assert files["README.md"] == text.replace("REPO_ID", "someone/eyes").encode()
    assert 'VAEGAN.from_pretrained("someone/eyes")' in files["README.md"].decode()


def test_bundle_is_half_size_loads_in_fp32_and_leaves_out_real_eyes(tmp_path):
    model_dir = tiny_model_dir(tmp_path / "model")
    (model_dir / "images").mkdir()
    for name in ("samples", "reconstructions", "latent_map"):
        (model_dir / "images" / f"{name}.png").write_bytes(b"png")
    (model_dir / "metrics.json").write_text(json.dumps({"recon_ssim": 0.8}))
    torch.manual_seed(1)
    discriminator = Discriminator(TINY)
    save_file(discriminator.state_dict(), model_dir / DISCRIMINATOR_FILE)
    assert hub.main(["bundle", "--model", str(model_dir), "--out", str(tmp_path / "bundle"), "--training-command", "python train.py --epochs 3"]) == 0
    bundle = tmp_path / "bundle"
    assert (bundle / "model.safetensors").stat().st_size < 0.6 * (model_dir / "model.safetensors").stat().st_size
    assert sorted(p.name for p in (bundle / "images").iterdir()) == ["latent_map.png", "samples.png"]
    model, latent_map = hub.load_model(str(bundle))
    reference = VAEGAN.from_pretrained(model_dir, strict=True).eval()
    assert next(model.parameters()).dtype == torch.float32 and latent_map.mu.dtype == np.float32
    z = torch.randn(3, 8)
    torch.testing.assert_close(model.decode(z), reference.decode(z), atol=5e-3, rtol=0)
    halved = load_file(bundle / DISCRIMINATOR_FILE)  # the discriminator travels too (fine-tuning starts from it), in fp16
    assert halved.keys() == discriminator.state_dict().keys() and all(v.dtype == torch.float16 for v in halved.values())
    for name, value in discriminator.state_dict().items():
        torch.testing.assert_close(halved[name].float(), value, atol=2e-3, rtol=1e-3, msg=name)
    (model_dir / DISCRIMINATOR_FILE).unlink()  # a plain VAE bundled over it keeps no D
    hub.bundle_model_dir(model_dir, bundle)
    assert not (bundle / DISCRIMINATOR_FILE).exists()
    text = (bundle / "README.md").read_text()
    assert "python train.py --epochs 3" in text and "| reconstruction SSIM | 0.8 |" in text


@pytest.mark.parametrize("source, message", [("/no/such/dir", "no such model dir"), ("./missing", "no such model dir")])
def test_missing_local_dirs_say_so(source, message):
    with pytest.raises(hub.HubError, match=message):
        hub.load_model(source)


def test_a_folder_without_config_is_not_a_model_dir(tmp_path):
    with pytest.raises(hub.HubError, match="no config.json"):
        hub.load_model(str(tmp_path))


def test_damaged_weights_are_a_one_line_error_and_a_damaged_map_is_dropped(tmp_path, caplog):
    model_dir = tiny_model_dir(tmp_path / "model")
    (model_dir / "latent_map.safetensors").write_bytes(b"\x80\x04not safetensors")
    model, latent_map = hub.load_model(str(model_dir))
    assert latent_map is None and "no usable latent map" in caplog.text and "not a safetensors file" in caplog.text
    (model_dir / "model.safetensors").write_bytes(b"garbage")
    with pytest.raises(hub.HubError, match="could not load the model .*SafetensorError"):
        hub.load_model(str(model_dir))
    result = subprocess.run([sys.executable, "app.py", "--model", str(model_dir)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("error: ") and "could not load the model" in result.stderr
