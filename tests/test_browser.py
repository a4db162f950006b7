"""The page in a real browser: Debian's chromium driven by Playwright, real mouse clicks on the WebGL map.

Needs `apt-get install -y chromium` (never `playwright install`: it downloads a browser).
"""

from __future__ import annotations

import os
import shutil

import pytest
from conftest import free_port, make_eye, random_latent_map, tiny_model

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
TIMEOUT_MS = 30_000


def open_tab(page, name: str) -> None:
    """Select a tab and wait until it is selected: Gradio re-mounts a tab's inputs as it opens, which would drop a value typed too early."""
    page.get_by_role("tab", name=name).click()
    page.get_by_role("tab", name=name, selected=True).wait_for()
    page.wait_for_timeout(200)  # the panel's components finish mounting


def wait_until(page, expression: str, **kwargs):
    """Wait for a JS condition, checked every 100 ms."""
    return page.wait_for_function(expression, polling=100, **kwargs)


@pytest.fixture(scope="module")
def app_url():
    from vaegan.ui import build_demo, launch_options

    model = tiny_model()
    latent_map = random_latent_map(n=400, open_share=0.75)  # imbalanced like the real data
    demo = build_demo(model, latent_map)
    demo.queue()
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True, **launch_options())
    yield f"http://127.0.0.1:{port}/", latent_map
    demo.close()


@pytest.fixture(scope="module")
def browser():
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail("the browser test needs Debian's chromium: run `apt-get install -y chromium` "
                    "(do not run `playwright install`)", pytrace=False)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def page(browser, app_url):
    url, _ = app_url
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.set_default_timeout(TIMEOUT_MS)
    page.console_errors = []
    page.on("console", lambda message: message.type == "error" and page.console_errors.append(message.text))
    page.on("pageerror", lambda error: page.console_errors.append(str(error)))
    page.goto(url)
    page.wait_for_selector('.vaegan-map[data-ready="1"]')
    yield page
    page.close()


@pytest.fixture(autouse=True)
def no_console_errors(request):
    yield
    if "page" in request.fixturenames:
        page = request.getfixturevalue("page")
        errors, page.console_errors[:] = list(page.console_errors), []
        assert errors == [], f"browser console errors: {errors}"


FIND_POINT = """() => {
  // a point with no other point or map annotation near it, in screen pixels
  const box = document.querySelector('.vaegan-map'), L = box._fullLayout, rect = box.getBoundingClientRect();
  const toScreen = (x, y) => [rect.left + L.xaxis._offset + L.xaxis.l2p(x), rect.top + L.yaxis._offset + L.yaxis.l2p(y)];
  const points = [];
  box.data.forEach(trace => { if (trace.customdata) for (let i = 0; i < trace.x.length; i++)
    points.push([...toScreen(trace.x[i], trace.y[i]), trace.customdata[i]]); });
  const marks = (L.annotations || []).map(a => toScreen(a.x, a.y));
  const clear = (px, py, skip, radius) => points.every(q => q === skip || Math.hypot(q[0] - px, q[1] - py) > radius);
  const inside = (px, py) => px > rect.left + L.xaxis._offset + 30 && px < rect.left + L.xaxis._offset + L.xaxis._length - 30
    && py > rect.top + L.yaxis._offset + 30 && py < rect.top + L.yaxis._offset + L.yaxis._length - 30;
  const far = (px, py) => marks.every(m => Math.hypot(m[0] - px, m[1] - py) > 90);
  const point = points.find(p => inside(p[0], p[1]) && far(p[0], p[1]) && clear(p[0], p[1], p, 14));
  let empty = null;
  for (let px = rect.left + L.xaxis._offset + 40; px < rect.left + L.xaxis._offset + L.xaxis._length - 40 && !empty; px += 7)
    for (let py = rect.top + L.yaxis._offset + 40; py < rect.top + L.yaxis._offset + L.yaxis._length - 40 && !empty; py += 7)
      if (far(px, py) && clear(px, py, null, 30)) empty = [px, py, L.xaxis.p2l(px - rect.left - L.xaxis._offset), L.yaxis.p2l(py - rect.top - L.yaxis._offset)];
  return {point, empty};
}"""


def current_image_src(page) -> str:
    return page.eval_on_selector("#current-eye img", "img => img.src")


def wait_for_new_image(page, old_src: str) -> None:
    wait_until(
        page,
        "old => { const img = document.querySelector('#current-eye img'); return img && img.src !== old && img.complete && img.naturalWidth > 0; }",
        arg=old_src,
    )


def click_mouse(page, x: float, y: float) -> None:
    page.mouse.move(x - 20, y - 20)
    page.mouse.move(x, y, steps=4)  # hover first, as a person does: Plotly picks the point on hover
    page.wait_for_timeout(120)
    page.mouse.click(x, y)


def test_map_is_drawn_with_both_classes_and_minority_on_top(page, app_url):
    _, latent_map = app_url
    traces = page.evaluate("() => document.querySelector('.vaegan-map').data.map(t => [t.type, t.name, t.x.length])")
    assert [t[0] for t in traces] == ["scattergl", "scattergl"]
    counts = {name.split()[0]: n for _, name, n in traces}
    assert counts == {"open": int(latent_map.labels.sum()), "closed": int((latent_map.labels == 0).sum())}
    assert traces[-1][1].startswith("closed")  # the minority class is drawn last
    assert page.locator(".legend").count() == 1
    script = page.evaluate("() => [...document.scripts].map(s => s.src).find(src => src.includes('plotly'))")
    assert script.startswith(page.url.rstrip("/")) and "gradio_api/file=" in script  # served by the app, no CDN


def test_clicking_a_point_decodes_it(page, app_url):
    _, latent_map = app_url
    found = page.evaluate(FIND_POINT)
    x, y, index = found["point"]
    old = current_image_src(page)
    click_mouse(page, x, y)
    wait_for_new_image(page, old)
    label = ("closed", "open")[int(latent_map.labels[index])]
    caption = page.inner_text("#current-caption")
    assert f"Eye #{index} from the map, labelled {label}" in caption and "P(open)" in caption
    assert page.eval_on_selector("#current-eye img", "img => img.naturalWidth") == 256
    texts = page.evaluate("() => document.querySelector('.vaegan-map')._fullLayout.annotations.map(a => a.text)")
    assert f"B: #{index} ({label})" in texts


def test_clicking_empty_space_decodes_a_blend(page):
    found = page.evaluate(FIND_POINT)
    px, py, x, y = found["empty"]
    old = current_image_src(page)
    page.wait_for_timeout(600)  # not a double-click with the previous test's click
    click_mouse(page, px, py)
    wait_for_new_image(page, old)
    caption = page.inner_text("#current-caption")
    assert "Blend of the 8 eyes nearest to" in caption
    shown = caption.split("nearest to (")[1].split(")")[0]
    assert [float(v) for v in shown.split(",")] == pytest.approx([x, y], abs=0.02)


def test_slider_moves_the_current_eye(page):
    old = current_image_src(page)
    track = page.locator("#open-slider input[type=range]")
    box = track.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.9, box["y"] + box["height"] / 2)
    wait_for_new_image(page, old)
    wait_until(page, "() => document.querySelector('#current-caption').innerText.includes('toward open')")


def test_upload_encodes_places_and_classifies(page, tmp_path):
    path = tmp_path / "my-eye.png"
    make_eye(True, size=120, seed=5).save(path)
    old = current_image_src(page)
    page.set_input_files("#upload-image input[type=file]", str(path))
    wait_until(page, "() => document.querySelector('#upload-caption').innerText.includes('Predicted')")
    wait_for_new_image(page, old)
    assert page.eval_on_selector("#reconstruction img", "img => img.naturalWidth") == 256
    wait_until(page, "() => document.querySelector('.vaegan-map')._fullLayout.annotations"
                     ".some(a => /^B: upload \\d+ \\(my-eye\\.png\\)$/.test(a.text))")


def test_a_drawn_example_can_be_encoded(page):
    page.locator("#upload-caption").evaluate("node => { node.dataset.before = node.innerText; }")
    page.locator("#examples img").nth(2).click()  # a closed eye
    wait_until(page, "() => { const node = document.querySelector('#upload-caption'); "
                           "return node.innerText.includes('Predicted') && node.innerText !== node.dataset.before; }")


def test_bad_upload_shows_a_message_and_the_page_keeps_working(page, tmp_path):
    bad = tmp_path / "holiday.png"
    bad.write_text("not really a picture")
    page.set_input_files("#upload-image input[type=file]", str(bad))
    toast = page.locator(".toast-body", has_text="not an image we can read")
    toast.first.wait_for()
    page.console_errors[:] = [e for e in page.console_errors if "not an image" not in e]  # Gradio echoes the gr.Error
    found = page.evaluate(FIND_POINT)
    old = current_image_src(page)
    click_mouse(page, *found["point"][:2])
    wait_for_new_image(page, old)


def test_interpolation_shows_a_strip_and_a_gif(page):
    open_tab(page, "Interpolate")
    page.click("#interpolate-button")
    wait_until(page, "() => { const img = document.querySelector('#strip img'); return img && img.complete && img.naturalWidth > 0; }")
    width, height = page.eval_on_selector("#strip img", "img => [img.naturalWidth, img.naturalHeight]")
    assert width > 7 * height  # 8 frames side by side
    link = page.locator("#gif a").first
    link.wait_for()
    assert ".gif" in (link.get_attribute("href") or "")


def test_sampling_is_seeded_and_a_sample_can_be_picked(page):
    open_tab(page, "Sample")
    page.fill("#seed input", "3")
    assert page.input_value("#seed input") == "3"
    page.click("#sample-button")
    thumbnails = page.locator("#samples img")
    wait_until(page, "() => document.querySelectorAll('#samples img').length === 16")
    first = [thumbnails.nth(i).get_attribute("src") for i in range(2)]
    wait_until(page, "() => document.querySelector('#current-caption').innerText.includes('Sample 1 (seed 3)')")
    old = current_image_src(page)
    thumbnails.nth(3).click()
    wait_for_new_image(page, old)
    assert "Sample 4 (seed 3)" in page.inner_text("#current-caption")
    assert "Nearest real eye" in page.inner_text("#current-caption")
    assert first[0] != first[1]
