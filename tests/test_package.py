"""vaegan as a Python package: declared dependencies, console commands from any folder, light import paths."""

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_pyproject_declares_every_requirement():
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    name = lambda line: re.split(r"[\[<>=!~ ;#]", line.strip(), maxsplit=1)[0].lower().replace("_", "-")  # noqa: E731
    required = {name(line) for line in (ROOT / "requirements.txt").read_text().splitlines() if line.strip() and not line.startswith("#")}
    assert required == {name(line) for line in declared}


def test_installed_package_runs_its_commands_from_any_folder(tmp_path):
    """Wheel built offline, installed with --no-deps into a fresh virtualenv that sees this environment's packages."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "page.png")
    for folder in ("vaegan", "assets"):
        shutil.copytree(ROOT / folder, source / folder, ignore=ignore)
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "--no-index", "-w", str(tmp_path / "dist"), str(source)]
    subprocess.run(build, check=True, capture_output=True, timeout=300)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)], check=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("vaegan-*.whl")
    subprocess.run([venv / "bin" / "python", "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True, capture_output=True, timeout=300)
    elsewhere = tmp_path / "elsewhere"  # no checkout here: only the installed package can answer
    elsewhere.mkdir()

    def command(*argv: str) -> str:
        result = subprocess.run([str(venv / "bin" / argv[0]), *argv[1:]], cwd=elsewhere, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout

    assert "--epochs" in command("vaegan-train", "--help") and "passes over the training split" in command("vaegan-train", "--help")
    assert "--model" in command("vaegan-app", "--help")
    assert "fit-features" in command("vaegan-evaluate", "--help")
    where = command("python", "-c", "import vaegan, vaegan.app, vaegan.eye_features as f; print(vaegan.__file__); print(vaegan.app.DEMO_MODEL); print(f.DEFAULT_FEATURES)")
    package, demo_model, features = map(Path, where.split())
    assert package.is_relative_to(venv) and demo_model.is_relative_to(venv) and features.is_relative_to(venv)
    assert (demo_model / "model.safetensors").is_file() and (demo_model / "latent_map.safetensors").is_file() and features.is_file()


def test_the_app_imports_no_torchvision_and_the_trainer_no_post_training_module():
    code = (
        "import sys, app, vaegan.app, vaegan.hub, vaegan.ui\n"
        "assert 'torchvision' not in sys.modules, 'the app imported torchvision'\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)
    code = "import sys, vaegan.trainer; bad = [m for m in ('vaegan.evaluate', 'vaegan.eye_features', 'vaegan.hub', 'vaegan.latent_map', 'vaegan.card') if m in sys.modules]; assert not bad, bad"
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)
