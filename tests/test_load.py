"""Many users at once: 20 API clients decoding map points for a few seconds, all answered, each with its own eye.

Localhost only, through `gradio_client` (installed with gradio) and the page's `/decode_point` endpoint.
Speed under load is measured by `benchmarks/app_latency.py --load`, not asserted here.
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from conftest import free_port, random_latent_map, tiny_model
from gradio_client import Client
from PIL import Image

from vaegan.ui import DISPLAY_SIZE, build_demo, decode, launch_options, to_picture

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

CLIENTS = 20
SECONDS = 5.0
MAX_CALLS = 500  # per client: the loop ends by itself even if the clock misbehaves
CALL_TIMEOUT_S = 60  # one unanswered request fails the test instead of hanging it
HOT_POINTS = 3


@pytest.fixture(scope="module")
def served():
    model = tiny_model()
    latent_map = random_latent_map(n=300)
    demo = build_demo(model, latent_map)
    demo.queue(default_concurrency_limit=2, max_size=64)  # as app.py on 2 cores
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_options())
    yield f"http://127.0.0.1:{port}/", model, latent_map
    demo.close()


def clicks(client: Client, seed: int, n_points: int, deadline: float) -> tuple[list, list[str]]:
    """One user clicking random points until the deadline: (answers as (index, image path, point), errors)."""
    rng = np.random.default_rng(seed)
    answers, errors = [], []
    for _ in range(MAX_CALLS):
        if time.monotonic() > deadline:
            break
        # half the clicks on a few points every user clicks: the same eye asked for at the same time
        index = int(rng.integers(HOT_POINTS)) if rng.random() < 0.5 else int(rng.integers(n_points))
        try:
            image, point = client.submit(index, api_name="/decode_point").result(timeout=CALL_TIMEOUT_S)
        except Exception as error:  # noqa: BLE001 - every failure is collected and reported
            errors.append(f"#{index}: {error!r}")
        else:
            answers.append((index, image, point))
    return answers, errors


def test_twenty_clients_clicking_points_are_all_answered(served, tmp_path):
    url, model, latent_map = served
    with ThreadPoolExecutor(CLIENTS) as pool:
        connect = [pool.submit(Client, url, verbose=False, download_files=str(tmp_path / f"user{k}"))
                   for k in range(CLIENTS)]
        users = [future.result(timeout=CALL_TIMEOUT_S) for future in connect]
        deadline = time.monotonic() + SECONDS
        results = list(pool.map(lambda k: clicks(users[k], k, len(latent_map), deadline), range(CLIENTS)))
        list(pool.map(Client.close, users))  # in parallel: each waits up to 1 s for its heartbeat thread

    errors = [error for _, user_errors in results for error in user_errors]
    assert errors == []
    assert all(len(answers) > 0 for answers, _ in results), "a client got no answer"
    expected: dict[int, np.ndarray] = {}
    for answers, _ in results:
        for index, image_path, point in answers:
            label = ("closed", "open")[int(latent_map.labels[index])]
            assert point["index"] == index and point["label"] == label
            assert [point["x"], point["y"]] == pytest.approx(latent_map.xy[index].tolist())
            if index not in expected:
                expected[index] = np.asarray(to_picture(decode(model, latent_map.mu[index])[0]))
            with Image.open(image_path) as picture:  # this request's eye, not a neighbour's
                assert picture.format == "PNG" and picture.size == (DISPLAY_SIZE, DISPLAY_SIZE)
                np.testing.assert_array_equal(np.asarray(picture.convert("L")), expected[index])


def test_decode_point_api_rejects_a_point_not_on_the_map(served, tmp_path):
    url, _, latent_map = served
    client = Client(url, verbose=False, download_files=str(tmp_path))
    with pytest.raises(Exception, match=f"No point #{len(latent_map)} on the map"):
        client.predict(len(latent_map), api_name="/decode_point")
    assert client.predict(0, api_name="/decode_point")[1]["index"] == 0  # and still answers
    client.close()
