"""The draw-a-digit page, used the way a reader uses it: strokes on the canvas, answers from the model.

`test_site_in_browser.py` already opens the page with every other one (no console error, nothing fetched
from another host). This file checks that it *works*, on the built site served from 127.0.0.1 in headless
Chromium:

- `window.mnistPredict` gives the probabilities onnxruntime gives in Python for the same model file, on
  MNIST test images (to 1e-4 each);
- MNIST test digits, traced into pen strokes (skeleton of the digit, one stroke per branch), are drawn on the
  canvas with real pointer events; for each one the page's 28x28 input must equal what the library's
  `crop_to_ink`, `scale_to_box` and `centre_in_frame` make from the same canvas (to 1e-4 on the 0..1 scale
  of a pixel), and the page's answer must agree with the Python model's answer on the original MNIST image
  in at least 95% of the digits.

The agreement figures are printed (run with `-s`) and saved to `_build/screenshots/draw_a_digit.json`,
with a screenshot of the page after the last digit, `_build/screenshots/draw_a_digit-drawn.png`.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
import pytest
from test_site_in_browser import (  # the same local server, browser and checks as the page-by-page test
    SCREENSHOTS,
    SITE,
    _full_page_screenshot,
    browser,
    console_errors,
    site_url,
)

from mnist_helpers.data import mnist_tensors
from mnist_helpers.export import onnx_logits, onnx_session
from mnist_helpers.inference import centre_in_frame, crop_to_ink, scale_to_box

if TYPE_CHECKING:
    from selenium.webdriver.chrome.webdriver import WebDriver

__all__ = ["browser", "site_url"]  # fixtures imported for pytest, not unused names

PAGE = "book/draw_a_digit.html"
MODEL = SITE / "_static" / "simplecnn.onnx"
PREDICTED = 200  # MNIST test images given straight to mnistPredict
DRAWN = 100  # MNIST test images drawn on the canvas
SCALE = 10  # canvas pixels per MNIST pixel: the 28x28 image covers the 280x280 canvas
PROBABILITY_TOLERANCE = 1e-4
PIXEL_TOLERANCE = 1e-4  # on the 0..1 scale of one pixel of the 28x28 input
MIN_AGREEMENT = 0.95


# ---------------------------------------------------------------------------------------------
# From an MNIST image to pen strokes.


def skeleton(mask: np.ndarray) -> np.ndarray:
    """Zhang-Suen thinning (1984): peel the mask's border pixels until one-pixel-wide lines are left.

    Each pass removes, in two half-steps, the border pixels whose removal keeps the shape connected
    (exactly one background-to-ink transition around them) and is not the end of a line.
    """
    image = np.pad(mask.astype(np.uint8), 1)
    changed = True
    while changed:
        changed = False
        for step in (0, 1):
            core = image[1:-1, 1:-1]
            p2, p3, p4 = image[:-2, 1:-1], image[:-2, 2:], image[1:-1, 2:]
            p5, p6, p7 = image[2:, 2:], image[2:, 1:-1], image[2:, :-2]
            p8, p9 = image[1:-1, :-2], image[:-2, :-2]
            ring = [p2, p3, p4, p5, p6, p7, p8, p9, p2]
            neighbours = sum(ring[:8])
            transitions = sum((a == 0) & (b == 1) for a, b in zip(ring, ring[1:]))
            first, second = (
                (p2 * p4 * p6, p4 * p6 * p8)
                if step == 0
                else (p2 * p4 * p8, p2 * p6 * p8)
            )
            remove = (
                (core == 1)
                & (neighbours >= 2)
                & (neighbours <= 6)
                & (transitions == 1)
                & (first == 0)
                & (second == 0)
            )
            if remove.any():
                core[remove] = 0
                changed = True
    return image[1:-1, 1:-1].astype(bool)


def strokes(image: np.ndarray) -> list[list[tuple[int, int]]]:
    """Pen strokes (lists of (row, col) pixels) that trace the skeleton of a 0..255 MNIST image.

    Walks the skeleton's 8-neighbour graph: each stroke starts at a line end where there is one, follows
    unused links, and stops where none is left; an isolated pixel becomes a dot.
    """
    pixels = set(zip(*np.nonzero(skeleton(image > 127)), strict=True))
    steps = [
        (-1, 0),
        (0, 1),
        (1, 0),
        (0, -1),
        (-1, 1),
        (1, 1),
        (1, -1),
        (-1, -1),
    ]  # straight ones first
    links = {
        p: [
            (p[0] + dr, p[1] + dc)
            for dr, dc in steps
            if (p[0] + dr, p[1] + dc) in pixels
        ]
        for p in pixels
    }
    used: set[frozenset[tuple[int, int]]] = set()

    def free(p: tuple[int, int]) -> list[tuple[int, int]]:
        return [q for q in links[p] if frozenset((p, q)) not in used]

    paths = [[p] for p in sorted(pixels) if not links[p]]
    while any(free(p) for p in pixels):
        candidates = sorted(p for p in pixels if free(p))
        start = next((p for p in candidates if len(free(p)) % 2 == 1), candidates[0])
        path = [start]
        while nexts := free(path[-1]):
            used.add(frozenset((path[-1], nexts[0])))
            path.append(nexts[0])
        paths.append(path)
    return paths


# ---------------------------------------------------------------------------------------------
# The page, driven from Python.

# The canvas's ink (0..255, black pen on white paper turned white on black, as the page does it), base64,
# and the page's 28x28 input made from that same ink.
CANVAS_INK_AND_INPUT = """
const canvas = document.getElementById("digit-canvas");
const rgba = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
const ink = new Uint8Array(canvas.width * canvas.height);
let text = "";
for (let i = 0; i < ink.length; i++) {
  ink[i] = 255 - rgba[4 * i];
  text += String.fromCharCode(ink[i]);
}
return [btoa(text), canvas.width, canvas.height, window.mnistPreprocess(ink, canvas.width, canvas.height)];
"""


@pytest.fixture(scope="module")
def page(site_url: str, browser: WebDriver) -> Iterator[WebDriver]:
    """The draw-a-digit page, loaded, with its model ready; fails on any console error it logged."""
    if not MODEL.is_file():
        pytest.fail(
            f"the built site has no {MODEL.name}: chapter 12 writes book/draw/simplecnn.onnx"
        )
    browser.get_log("browser")
    browser.get(site_url + PAGE)
    ready = browser.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "window.mnistPredict(new Array(784).fill(0)).then(() => done(null), (e) => done(String(e)));"
    )
    assert ready is None, f"mnistPredict failed on a blank image: {ready}"
    yield browser
    assert not console_errors(browser.get_log("browser"))


def page_probabilities(driver: WebDriver, pixels: np.ndarray) -> np.ndarray:
    """The page's own ``mnistPredict`` on 0..1 images (N, 28, 28); an error's text if it failed."""
    return np.asarray(
        driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "Promise.all(arguments[0].map((p) => window.mnistPredict(p))).then(done, (e) => done(String(e)));",
            pixels.reshape(len(pixels), -1).tolist(),
        )
    )


def python_probabilities(pixels: np.ndarray) -> np.ndarray:
    """Softmax of onnxruntime's logits in Python, for 0..1 images (N, 28, 28), the page's scale."""
    logits = onnx_logits(
        onnx_session(MODEL), (pixels * 255).astype(np.float32)[:, None]
    )
    exps = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exps / exps.sum(axis=1, keepdims=True)


def library_frame(ink: np.ndarray) -> np.ndarray:
    """What mnist_helpers.inference makes of a clean drawing (0..255 ink), on the page's 0..1 scale."""
    return centre_in_frame(scale_to_box(crop_to_ink(ink.astype(np.float32)))) / 255


def draw(page: WebDriver, paths: list[list[tuple[int, int]]]) -> None:
    """Clear the canvas and draw ``paths`` on it with pointer events, like a mouse held down along each."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    left, top = page.execute_script(
        "const canvas = document.getElementById('digit-canvas');"
        "canvas.scrollIntoView({block: 'center'});"
        "const box = canvas.getBoundingClientRect();"
        "return [box.left + 2, box.top + 2];"  # inside the 2 px border
    )
    page.find_element(By.ID, "digit-clear").click()
    actions = ActionChains(page, duration=0)
    pointer = actions.w3c_actions.pointer_action
    for path in paths:
        (r, c), *rest = path
        pointer.move_to_location(
            round(left + SCALE * c + SCALE / 2), round(top + SCALE * r + SCALE / 2)
        )
        pointer.pointer_down()
        for r, c in rest:
            pointer.move_to_location(
                round(left + SCALE * c + SCALE / 2), round(top + SCALE * r + SCALE / 2)
            )
        pointer.pointer_up()
    actions.perform()


def page_state(page: WebDriver) -> dict[str, Any]:
    """After the page has caught up with the drawing: its answer, its canvas ink and its 28x28 input."""
    page.execute_async_script(
        "window.mnistIdle().then(arguments[arguments.length - 1]);"
    )
    encoded, width, height, frame = page.execute_script(CANVAS_INK_AND_INPUT)
    ink = np.frombuffer(base64.b64decode(encoded), dtype=np.uint8).reshape(
        height, width
    )
    answer = page.execute_script(
        "return document.getElementById('digit-prediction').textContent;"
    )
    frame = (
        None if frame is None else np.asarray(frame, dtype=np.float64).reshape(28, 28)
    )
    return {"ink": ink, "frame": frame, "answer": answer}


@pytest.fixture(scope="module")
def report() -> Iterator[dict[str, Any]]:
    """Figures the tests measure, printed and saved next to the screenshots at the end."""
    figures: dict[str, Any] = {}
    yield figures
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    (SCREENSHOTS / "draw_a_digit.json").write_text(
        json.dumps(figures, indent=2) + "\n", encoding="utf-8"
    )
    print("\ndraw-a-digit page:", json.dumps(figures, indent=2))


# ---------------------------------------------------------------------------------------------
# The tests.


def test_page_starts_with_no_answer(page: WebDriver) -> None:
    assert (
        page.execute_script(
            "return document.getElementById('digit-prediction').textContent;"
        )
        == ""
    )


def test_mnist_predict_matches_onnxruntime_in_python(
    page: WebDriver, report: dict[str, Any]
) -> None:
    images, _ = mnist_tensors(train=False, limit=PREDICTED)
    pixels = images[:, 0].numpy().astype(np.float64) / 255
    in_page = page_probabilities(page, pixels)
    assert in_page.shape == (PREDICTED, 10), f"mnistPredict did not answer: {in_page}"
    difference = float(np.abs(in_page - python_probabilities(pixels)).max())
    report["mnistPredict_images"] = PREDICTED
    report["mnistPredict_max_probability_difference"] = difference
    assert difference <= PROBABILITY_TOLERANCE
    assert np.allclose(in_page.sum(axis=1), 1, atol=1e-6)


def test_mnist_predict_refuses_a_wrong_size(page: WebDriver) -> None:
    error = page.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "window.mnistPredict([0, 1]).then(() => done(null), (e) => done(String(e)));"
    )
    assert error is not None and "784" in error


def test_drawn_digits_read_like_the_python_model_reads_them(
    page: WebDriver, report: dict[str, Any]
) -> None:
    images, labels = mnist_tensors(train=False, limit=DRAWN)
    originals = images[:, 0].numpy()
    python_answers = python_probabilities(originals / 255).argmax(axis=1)
    answers, frame_differences, own_input_agrees = [], [], []
    for image in originals:
        draw(page, strokes(image))
        state = page_state(page)
        answers.append(int(state["answer"]) if state["answer"] else -1)
        frame_differences.append(
            float(np.abs(state["frame"] - library_frame(state["ink"])).max())
        )
        own_input_agrees.append(
            answers[-1] == int(python_probabilities(state["frame"][None]).argmax())
        )
    _full_page_screenshot(page, SCREENSHOTS / "draw_a_digit-drawn.png")
    answers_ = np.asarray(answers)
    agreement = float((answers_ == python_answers).mean())
    report.update(
        {
            "drawn_digits": DRAWN,
            "agreement_with_python_model_on_the_mnist_images": agreement,
            "page_answers_correct": float((answers_ == labels.numpy()).mean()),
            "python_answers_correct": float((python_answers == labels.numpy()).mean()),
            "max_frame_difference_page_vs_library": max(frame_differences),
            "page_answer_equals_python_on_the_page_input": float(
                np.mean(own_input_agrees)
            ),
            "disagreements": [
                {
                    "index": i,
                    "label": int(labels[i]),
                    "python": int(python_answers[i]),
                    "page": a,
                }
                for i, a in enumerate(answers)
                if a != python_answers[i]
            ],
        }
    )
    assert max(frame_differences) <= PIXEL_TOLERANCE, (
        "the page's 28x28 input differs from the library's"
    )
    assert all(own_input_agrees), (
        "the page's answer is not the model's answer on the page's own input"
    )
    assert agreement >= MIN_AGREEMENT


def test_clear_empties_the_canvas_and_the_answer(page: WebDriver) -> None:
    from selenium.webdriver.common.by import By

    draw(page, [[(10, 10), (10, 11), (11, 12), (12, 12)]])
    assert page_state(page)["answer"] != ""
    page.find_element(By.ID, "digit-clear").click()
    state = page_state(page)
    assert state["answer"] == "" and not state["ink"].any()


@pytest.mark.parametrize("edition", ["zh-hans/", "zh-hant/"])
def test_the_page_works_in_each_chinese_edition(
    edition: str, site_url: str, browser: WebDriver
) -> None:
    """The translated page loads its own copy of the model, gives onnxruntime's answers, reads a
    drawn digit, clears, and speaks the page's language (its messages come from the page's HTML)."""
    from selenium.webdriver.common.by import By

    browser.get_log("browser")
    browser.get(site_url + edition + PAGE)
    images, _ = mnist_tensors(train=False, limit=20)
    pixels = images[:, 0].numpy().astype(np.float64) / 255
    in_page = page_probabilities(browser, pixels)
    assert in_page.shape == (len(pixels), 10), f"mnistPredict did not answer: {in_page}"
    assert np.abs(in_page - python_probabilities(pixels)).max() <= PROBABILITY_TOLERANCE
    status = browser.find_element(By.ID, "digit-status")
    assert status.text == status.get_attribute("data-ready")
    assert re.search(r"[\u4e00-\u9fff]", status.text), (
        f"status not translated: {status.text!r}"
    )
    draw(browser, strokes(images[0, 0].numpy()))
    assert page_state(browser)["answer"] != ""
    browser.find_element(By.ID, "digit-clear").click()
    assert page_state(browser)["answer"] == ""
    assert not console_errors(browser.get_log("browser"))


# ---------------------------------------------------------------------------------------------
# The stroke tracer on its own.


def test_skeleton_thins_a_thick_bar_to_a_line() -> None:
    bar = np.zeros((9, 15), dtype=bool)
    bar[3:6, 2:13] = True
    thin = skeleton(bar)
    assert thin.any() and thin.sum(axis=0).max() == 1  # one pixel high everywhere
    assert not (thin & ~bar).any()


def test_strokes_trace_every_skeleton_pixel() -> None:
    ring = np.zeros((28, 28), dtype=np.uint8)
    rows, cols = np.indices(ring.shape)
    ring[np.abs(np.hypot(rows - 14, cols - 14) - 8) < 1.5] = 255  # an 0
    ring[3, 3] = 255  # a dot
    traced = {p for path in strokes(ring) for p in path}
    assert traced == set(zip(*np.nonzero(skeleton(ring > 127)), strict=True))
    assert [(3, 3)] in strokes(ring)
