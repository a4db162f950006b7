import json
import pickle

import pytest
import torch
from safetensors import SafetensorError

from vaegan import VAEGAN, ModelConfig
from vaegan import losses
from vaegan.networks import Discriminator, toward_other_state, validate_config

TINY = dict(base_channels=8, max_channels=32, latent_dim=8)


@pytest.mark.parametrize("image_size, channels", [(32, 1), (64, 1), (64, 3), (16, 3)])
def test_shapes(image_size, channels):
    config = ModelConfig(image_size=image_size, channels=channels, **TINY)
    model = VAEGAN(config).eval()
    x = torch.rand(3, channels, image_size, image_size) * 2 - 1
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (3, 8)
    x_rec = model.decode(mu)
    assert x_rec.shape == x.shape and x_rec.abs().max() <= 1
    x_rec, mu, logvar, z = model(x)
    assert x_rec.shape == x.shape and model.sample(5).shape == (5, channels, image_size, image_size)
    logits, states, features = Discriminator(config)(x)
    assert logits.shape == (3,) and features.ndim == 2 and features.shape[0] == 3


def test_slider_edit_moves_open_eyes_back_and_closed_eyes_on():
    z, direction = torch.randn(4, 8), torch.randn(8)
    labels = torch.tensor([1, 0, 1, 0])
    moved = toward_other_state(z, labels, direction)
    torch.testing.assert_close(moved[labels == 1], z[labels == 1] - direction)
    torch.testing.assert_close(moved[labels == 0], z[labels == 0] + direction)
    torch.testing.assert_close(toward_other_state(moved, 1 - labels, direction), z)  # and back


def test_eval_outputs_do_not_depend_on_the_batch():
    model = VAEGAN(ModelConfig(**TINY)).eval()
    z = torch.randn(6, 8)
    alone = model.decode(z[:1])
    in_batch = model.decode(z)[:1]
    torch.testing.assert_close(alone, in_batch, rtol=1e-5, atol=1e-5)


def test_save_load_round_trip_gives_identical_outputs(tmp_path):
    model = VAEGAN(ModelConfig(image_size=32, **TINY)).eval()
    model.save_pretrained(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} >= {"config.json", "model.safetensors"}
    loaded = VAEGAN.from_pretrained(tmp_path, strict=True).eval()
    assert loaded.config == model.config
    x = torch.rand(4, 1, 32, 32) * 2 - 1
    assert torch.equal(model.encode(x)[0], loaded.encode(x)[0])
    assert torch.equal(model.decode(torch.ones(2, 8)), loaded.decode(torch.ones(2, 8)))


@pytest.mark.parametrize(
    "change, message",
    [
        ({"image_size": 1 << 20}, "image_size"),
        ({"image_size": 48}, "power of two"),
        ({"latent_dim": -3}, "latent_dim"),
        ({"base_channels": 10**9}, "base_channels"),
        ({"channels": 2}, "channels"),
        ({"model_type": "diffusion"}, "model_type"),
    ],
)
def test_absurd_configs_are_rejected_before_allocation(tmp_path, change, message):
    with pytest.raises(ValueError, match=message):
        validate_config(ModelConfig(**{**TINY, **change}))
    VAEGAN(ModelConfig(**TINY)).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, **change}))
    with pytest.raises(ValueError, match=message):
        VAEGAN.from_pretrained(tmp_path, strict=True)


class _Exploit:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_a_pickle_in_place_of_the_weights_is_not_unpickled(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    VAEGAN(ModelConfig(**TINY)).save_pretrained(tmp_path / "model")
    (tmp_path / "model" / "model.safetensors").write_bytes(pickle.dumps({"weights": _Exploit()}))
    with pytest.raises(SafetensorError):
        VAEGAN.from_pretrained(tmp_path / "model", strict=True)
    assert not (tmp_path / "PWNED").exists()


def test_the_group_norm_discriminator_has_free_weights_and_group_norms():
    config = ModelConfig(image_size=32, **TINY)
    spectral, group = Discriminator(config), Discriminator(config, norm="group")
    x = torch.rand(4, 1, 32, 32) * 2 - 1
    for discriminator in (spectral, group):
        logits, states, features = discriminator(x)
        assert logits.shape == states.shape == (4,) and features.shape[0] == 4
    assert any("parametrizations" in name for name in spectral.state_dict())  # spectral norm on every weight
    assert not any("parametrizations" in name for name in group.state_dict())
    norms = [m for m in group.modules() if isinstance(m, torch.nn.GroupNorm)]
    assert len(norms) == len(group.blocks) - 1  # every block but the first, which sees the image as it is
    assert set(spectral.state_dict()) != set(group.state_dict())  # a saved D says which kind it is
    with pytest.raises(ValueError, match="discriminator norm must be one of spectral, group"):
        Discriminator(config, norm="batch")
