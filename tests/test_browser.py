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


def open_page(browser, url: str, width: int, height: int):
    """A tab at this viewport, recording console errors, once the map is drawn."""
    page = browser.new_page(viewport={"width": width, "height": height})
    page.set_default_timeout(TIMEOUT_MS)
    page.console_errors = []
    page.on("console", lambda message: message.type == "error" and page.console_errors.append(message.text))
    page.on("pageerror", lambda error: page.console_errors.append(str(error)))
    page.goto(url)
    page.wait_for_selector('.vaegan-map[data-ready="1"]')
    return page


@pytest.fixture(scope="module")
def page(browser, app_url):
    page = open_page(browser, app_url[0], 1280, 1000)
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
    assert "Blend of the 3 eyes nearest to" in caption
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
    thumbnails = page.locator("#samples img")
    opening = [thumbnails.nth(i).get_attribute("src") for i in range(2)]  # the tab opens on seed 0's grid
    assert len(set(opening)) == 2 and all(opening)
    page.click("#sample-button")
    wait_until(page, "() => document.querySelector('#current-caption').innerText.includes('Sample 1 (seed 3)')")
    wait_until(page, "() => document.querySelectorAll('#samples img').length === 16")
    first = [thumbnails.nth(i).get_attribute("src") for i in range(2)]
    assert first[0] not in opening  # seed 3's grid replaced it
    old = current_image_src(page)
    thumbnails.nth(3).click()
    wait_for_new_image(page, old)
    assert "Sample 4 (seed 3)" in page.inner_text("#current-caption")
    assert "Nearest real eye" in page.inner_text("#current-caption")
    assert first[0] != first[1]


def test_a_and_b_labels_do_not_overlap_on_the_same_point(page):
    x, y, index = page.evaluate(FIND_POINT)["point"]
    for _ in range(2):  # the same eye as A and as B: the two marks coincide
        page.wait_for_timeout(600)  # not a double-click
        click_mouse(page, x, y)
    wait_until(page, f"() => document.querySelector('.vaegan-map')._fullLayout.annotations"
                     f".filter(a => a.text.startsWith('A: #{index} ') || a.text.startsWith('B: #{index} ')).length === 2")
    boxes = page.evaluate("() => [...document.querySelectorAll('.vaegan-map .annotation-text-g')]"
                          ".map(g => { const r = g.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; })")
    assert len(boxes) == 2
    (l1, t1, r1, b1), (l2, t2, r2, b2) = boxes
    assert r1 <= l2 or r2 <= l1 or b1 <= t2 or b2 <= t1, f"A and B labels overlap: {boxes}"


def test_title_is_drawn_in_one_system_font(page):
    # Gradio's default theme loads "Source Sans Pro" 600 from a file with only "A" and "B": the title mixed fonts
    family = page.eval_on_selector("h1", "h1 => getComputedStyle(h1).fontFamily")
    faces = page.evaluate("() => [...document.fonts].map(f => f.family.replace(/[\"']/g, ''))")
    assert "system-ui" in family
    assert not any(face in family for face in faces), f"the title uses a web font: {family} with faces {faces}"
    assert page.inner_text("h1") == "Eyes VAE-GAN explorer"


def test_a_new_upload_clears_the_example_highlight(page, tmp_path):
    open_tab(page, "Upload")
    page.locator("#examples img").nth(0).click()  # the pointer stays over the example, which Gradio highlights
    wait_until(page, "() => document.querySelectorAll('#examples .selected').length === 1")
    wait_until(page, "() => document.querySelector('#current-caption').innerText.includes('example-open-1.png')")
    path = tmp_path / "another-eye.png"
    make_eye(False, size=100, seed=9).save(path)
    page.set_input_files("#upload-image input[type=file]", str(path))  # as a dropped or pasted file arrives
    wait_until(page, "() => document.querySelector('#current-caption').innerText.includes('another-eye.png')")
    wait_until(page, "() => document.querySelectorAll('#examples .selected').length === 0")
    # A is the example, B the new file: Gradio's second report of the same upload changed nothing
    pair = page.inner_text("#pair-caption")
    assert "example-open-1.png" in pair.split("→")[0] and "another-eye.png" in pair.split("→")[1]


def test_sample_numbers_do_not_cover_the_thumbnails(page):
    open_tab(page, "Sample")
    page.click("#sample-button")
    wait_until(page, "() => document.querySelectorAll('#samples img').length === 16")
    covered = page.evaluate("""() => [...document.querySelectorAll('#samples .thumbnail-item')].map(item => {
      const img = item.querySelector('img').getBoundingClientRect(), label = item.querySelector('.caption-label');
      if (!label) return 0;
      const r = label.getBoundingClientRect();
      return Math.max(0, Math.min(r.right, img.right) - Math.max(r.left, img.left)) * Math.max(0, Math.min(r.bottom, img.bottom) - Math.max(r.top, img.top));
    })""")
    assert len(covered) == 16 and max(covered) <= 1  # pixels of each thumbnail under its label
    names = page.evaluate("() => [...document.querySelectorAll('#samples .caption-label')].map(c => c.textContent.trim())")
    assert names[:2] == ["sample 1", "sample 2"]  # still there for screen readers


@pytest.fixture(scope="module")
def phone(browser, app_url):
    page = open_page(browser, app_url[0], 420, 900)
    yield page
    assert page.console_errors == [], f"browser console errors: {page.console_errors}"
    page.close()


def overlap(a: dict, b: dict) -> float:
    """Area shared by two bounding boxes."""
    width = min(a["x"] + a["width"], b["x"] + b["width"]) - max(a["x"], b["x"])
    height = min(a["y"] + a["height"], b["y"] + b["height"]) - max(a["y"], b["y"])
    return max(0.0, width) * max(0.0, height)


def test_at_420_px_legend_and_toolbar_do_not_overlap(phone):
    box = phone.locator(".vaegan-map").bounding_box()
    phone.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)  # a desktop shows the toolbar on hover
    toolbar, legend = phone.locator(".vaegan-map .modebar"), phone.locator(".vaegan-map .legend")
    toolbar.wait_for(state="visible")
    assert toolbar.bounding_box()["width"] > 0 and legend.bounding_box()["width"] > 0
    assert overlap(toolbar.bounding_box(), legend.bounding_box()) == 0
    assert toolbar.locator("[data-title='Zoom in']").count() == 1  # the zoom the hint points to
    assert phone.evaluate("() => document.documentElement.scrollWidth") <= 420  # nothing wider than the screen


def test_at_420_px_the_hint_speaks_of_taps_not_scrolling(phone):
    note = phone.inner_text(".vaegan-map-note")
    assert "Tap a dot" in note and "scroll" not in note.lower() and "+ and −" in note


def test_at_420_px_the_upload_row_stacks_evenly(phone):
    upload, seen, reconstruction = (phone.locator(f"#{name}").bounding_box() for name in ("upload-image", "seen", "reconstruction"))
    assert upload["y"] + upload["height"] <= min(seen["y"], reconstruction["y"])  # the photo on its own row
    assert seen["y"] == pytest.approx(reconstruction["y"], abs=1)  # the two results side by side
    assert seen["width"] == pytest.approx(reconstruction["width"], abs=2)
    assert seen["width"] + reconstruction["width"] > 0.8 * upload["width"]  # filling the row between them


def test_at_420_px_the_interpolate_and_sample_tabs_fit(phone):
    open_tab(phone, "Interpolate")
    caption = phone.locator("#pair-caption").bounding_box()
    assert caption["width"] > 300  # a line of text, not a word to a line
    open_tab(phone, "Sample")
    phone.click("#sample-button")
    # the tab opens on seed 0's grid already: wait for the click's result (sample 1 becomes the current eye)
    wait_until(phone, "() => document.querySelector('#current-caption').innerText.includes('Sample 1 (seed 0)')")
    wait_until(phone, "() => document.querySelectorAll('#samples img').length === 16")
    gallery = phone.locator("#samples").bounding_box()
    thumbnails = phone.evaluate("() => [...document.querySelectorAll('#samples .thumbnail-item')]"
                                ".map(t => { const r = t.getBoundingClientRect(); return [r.left, r.top, r.right, r.bottom]; })")
    assert len({round(top) for _, top, _, _ in thumbnails}) == 4  # 4 rows of 4
    assert all(gallery["x"] <= left and right <= gallery["x"] + gallery["width"] for left, _, right, _ in thumbnails)
    assert all(bottom <= gallery["y"] + gallery["height"] for _, _, _, bottom in thumbnails)  # none cut off below
