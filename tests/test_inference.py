"""Photos of handwritten digits are turned into MNIST-style 28x28 inputs, whatever their size, colour mode,
polarity or lighting; unusable inputs fail with an error naming the input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw

from mnist_helpers.inference import (
    MNIST_MEAN,
    MNIST_STD,
    NoInkError,
    Prediction,
    SeveralMarksError,
    UnreadableImageError,
    centre_of_mass,
    predict,
    preprocess,
    preprocess_steps,
)

MNIST_CENTRE = 14.0  # where MNIST puts the centre of mass, in pixel coordinates (its average over the test set)


def digit_mask(
    width: int, height: int, box: tuple[float, float, float, float], shape: str = "7"
) -> np.ndarray:
    """A thick-stroked digit (1 = ink) drawn with lines and ellipses inside ``box`` (fractions of the image)."""
    mask = Image.new("L", (width, height), 0)
    draw = ImageDraw.Draw(mask)
    x0, y0, x1, y1 = box[0] * width, box[1] * height, box[2] * width, box[3] * height
    stroke = max(2, round(0.12 * min(x1 - x0, y1 - y0)))
    if shape == "7":
        draw.line(
            [(x0, y0), (x1, y0), (x0 + 0.35 * (x1 - x0), y1)],
            fill=255,
            width=stroke,
            joint="curve",
        )
    elif shape == "0":
        draw.ellipse([x0, y0, x1, y1], outline=255, width=stroke)
    elif shape == "4":
        xm = x0 + 0.65 * (x1 - x0)
        draw.line(
            [
                (xm, y1),
                (xm, y0),
                (x0, y0 + 0.65 * (y1 - y0)),
                (x1, y0 + 0.65 * (y1 - y0)),
            ],
            fill=255,
            width=stroke,
        )
    return np.asarray(mask, dtype=np.float32) / 255


def photo(
    width: int = 300,
    height: int = 200,
    box: tuple[float, float, float, float] = (0.15, 0.2, 0.4, 0.75),
    shape: str = "7",
    paper: float = 185,
    ink: float = 45,
    gradient: float = 0,
    noise: float = 0,
    seed: int = 0,
) -> np.ndarray:
    """A greyscale 'photo': ``ink`` strokes on ``paper`` lit with a left-to-right ``gradient`` plus noise."""
    mask = digit_mask(width, height, box, shape)
    background = (
        paper + gradient * np.linspace(-0.5, 0.5, width, dtype=np.float32)[None, :]
    )
    pixels = background * (1 - mask) + ink * mask
    pixels = (
        pixels + np.random.default_rng(seed).normal(0, noise, pixels.shape)
        if noise
        else pixels
    )
    return np.clip(pixels, 0, 255).round().astype(np.uint8)


def unnormalised(tensor: torch.Tensor) -> np.ndarray:
    """Back from the network's input to ink in [0, 1], to measure where the ink is."""
    return (tensor[0].numpy() * MNIST_STD + MNIST_MEAN).clip(0, 1)


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def assert_mnist_like(tensor: torch.Tensor) -> None:
    assert tensor.shape == (1, 28, 28) and tensor.dtype == torch.float32
    ink = unnormalised(tensor)
    assert ink.max() > 0.9, "stroke cores should be full white, as in MNIST"
    row, col = centre_of_mass(ink)
    assert (
        abs(row - MNIST_CENTRE) <= 0.5 + 1e-6 and abs(col - MNIST_CENTRE) <= 0.5 + 1e-6
    ), (row, col)
    rows, cols = np.flatnonzero(ink.any(1)), np.flatnonzero(ink.any(0))
    longer_side = max(rows[-1] - rows[0], cols[-1] - cols[0]) + 1
    assert 19 <= longer_side <= 21, (
        "the digit's longer side is scaled to MNIST's 20 px box"
    )


def as_input(pixels: np.ndarray, kind: str, mode: str, tmp_path: Path):
    """The same picture as a file path, a PIL image or a NumPy array, in colour mode L, RGB or RGBA."""
    image = Image.fromarray(pixels).convert(mode)
    if kind == "path":
        path = tmp_path / f"digit_{mode}.png"
        image.save(path)
        return path
    if kind == "str":
        path = tmp_path / f"digit_{mode}.png"
        image.save(path)
        return str(path)
    return image if kind == "pil" else np.asarray(image)


@pytest.mark.parametrize("kind", ["path", "str", "pil", "array"])
@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
@pytest.mark.parametrize("dark_on_light", [True, False])
def test_every_input_kind_gives_a_centred_28x28_digit(
    kind, mode, dark_on_light, tmp_path
):
    pixels = photo(173, 129, box=(0.5, 0.1, 0.8, 0.6))  # odd size, digit off-centre
    pixels = pixels if dark_on_light else 255 - pixels
    assert_mnist_like(preprocess(as_input(pixels, kind, mode, tmp_path)))


@pytest.mark.parametrize(
    "size, box",
    [
        ((20, 20), (0.15, 0.1, 0.85, 0.9)),
        ((28, 28), (0.2, 0.15, 0.8, 0.85)),
        ((57, 31), (0.05, 0.1, 0.4, 0.9)),
        ((31, 90), (0.2, 0.5, 0.9, 0.85)),
        ((1000, 600), (0.6, 0.55, 0.8, 0.95)),
    ],
)
@pytest.mark.parametrize("shape", ["7", "0", "4"])
def test_any_size_and_position_gives_a_centred_28x28_digit(size, box, shape):
    assert_mnist_like(preprocess(photo(*size, box=box, shape=shape)))


def test_both_polarities_give_the_same_tensor():
    dark_on_light = photo(211, 157, box=(0.3, 0.25, 0.6, 0.8), shape="4")
    light_on_dark = 255 - dark_on_light
    assert torch.allclose(
        preprocess(dark_on_light), preprocess(light_on_dark), atol=1e-4
    )
    # a different contrast (white chalk on a black board) gives the same digit too
    chalk = (digit_mask(211, 157, (0.3, 0.25, 0.6, 0.8), "4") * 255).astype(np.uint8)
    assert correlation(preprocess(dark_on_light), preprocess(chalk)) > 0.97


def test_transparent_pixels_count_as_paper():
    mask = digit_mask(120, 90, (0.2, 0.1, 0.5, 0.9))
    rgba = np.zeros(
        (90, 120, 4), dtype=np.uint8
    )  # black strokes, fully transparent elsewhere
    rgba[..., 3] = (mask * 255).astype(np.uint8)
    on_white = (255 * (1 - mask)).astype(np.uint8)
    assert torch.allclose(preprocess(rgba), preprocess(on_white), atol=1e-4)
    assert_mnist_like(preprocess(Image.fromarray(rgba, "RGBA")))


def test_float_arrays_in_unit_range_are_accepted():
    pixels = photo(80, 60)
    assert torch.allclose(
        preprocess(pixels.astype(np.float32) / 255), preprocess(pixels), atol=1e-4
    )


def test_phone_rotation_tag_is_applied(tmp_path):
    upright = photo(90, 140, box=(0.2, 0.2, 0.8, 0.6))
    stored_sideways = np.rot90(
        upright, k=1
    )  # what the sensor wrote; EXIF orientation 6 turns it back
    exif = Image.Exif()
    exif[0x0112] = 6
    path = tmp_path / "phone.jpg"
    Image.fromarray(np.ascontiguousarray(stored_sideways)).save(
        path, exif=exif, quality=95
    )
    assert correlation(preprocess(path), preprocess(upright)) > 0.95


def test_gradient_lighting_and_faint_noise_still_isolate_the_digit():
    box = (0.55, 0.2, 0.85, 0.8)
    clean = photo(400, 300, box=box)
    harsh = photo(
        400, 300, box=box, paper=150, ink=40, gradient=160, noise=8
    )  # paper 70..230 grey
    cleaned = preprocess_steps(harsh)["cleaned"]
    # nothing survives cleaning except the digit: every ink pixel lies within 2 px of the clean photo's ink
    rows, cols = np.nonzero(preprocess_steps(clean)["cleaned"])
    near_digit = np.zeros(cleaned.shape, dtype=bool)
    for dr in range(-2, 3):
        for dc in range(-2, 3):
            near_digit[
                np.clip(rows + dr, 0, cleaned.shape[0] - 1),
                np.clip(cols + dc, 0, cleaned.shape[1] - 1),
            ] = True
    assert cleaned[~near_digit].max() == 0
    assert (cleaned[near_digit] > 0).mean() > 0.5, "and the digit itself is kept"
    assert correlation(preprocess(harsh), preprocess(clean)) > 0.95
    assert_mnist_like(preprocess(harsh))


def test_specks_of_dust_are_ignored():
    pixels = photo(300, 200, box=(0.4, 0.3, 0.6, 0.8))
    dusty = pixels.copy()
    for row, col in [(10, 10), (180, 280), (20, 250), (150, 30)]:
        dusty[row : row + 2, col : col + 2] = 40
    assert torch.allclose(preprocess(dusty), preprocess(pixels), atol=1e-4)


@pytest.mark.parametrize(
    "pixels",
    [
        np.full((64, 48), 200, dtype=np.uint8),
        np.zeros((20, 20), dtype=np.uint8),
        np.random.default_rng(0).integers(0, 256, (120, 160)).astype(np.uint8),
        np.clip(np.random.default_rng(1).normal(180, 6, (300, 400)), 0, 255).astype(
            np.uint8
        ),
        photo(
            300, 200, box=(0.4, 0.3, 0.6, 0.8), ink=175
        ),  # ink almost the paper's colour: invisible
    ],
    ids=["uniform", "black", "uniform-noise", "faint-noise", "no-contrast"],
)
def test_images_without_ink_raise_a_clear_error(pixels):
    with pytest.raises(NoInkError, match="no digit found"):
        preprocess(pixels)


def test_no_ink_error_names_the_file(tmp_path):
    path = tmp_path / "blank page.png"
    Image.new("RGB", (200, 100), (230, 230, 230)).save(path)
    with pytest.raises(NoInkError) as caught:
        preprocess(path)
    assert str(path) in str(caught.value) and caught.value.source == str(path)


def test_name_overrides_the_description_in_errors():
    with pytest.raises(NoInkError, match="^upload #3: "):
        preprocess(np.zeros((30, 30), dtype=np.uint8), name="upload #3")


def truncated_png(path: Path) -> Path:
    buffer = path.with_suffix(".full.png")
    Image.fromarray(photo(200, 150)).save(buffer)
    path.write_bytes(buffer.read_bytes()[:400])
    return path


@pytest.mark.parametrize(
    "make, reason",
    [
        (lambda p: p, "file not found"),
        (
            lambda p: (p.write_bytes(b"\x89PNG\r\n\x1a\n this is not really a PNG"), p)[
                1
            ],
            "not an image file",
        ),
        (lambda p: (p.write_text("hello"), p)[1], "not an image file"),
        (truncated_png, "cannot decode"),
        (lambda p: (p.mkdir(), p)[1], "folder"),
    ],
    ids=["missing", "corrupt", "text", "truncated", "folder"],
)
def test_unreadable_files_name_the_file_and_the_reason(tmp_path, make, reason):
    path = make(tmp_path / "digit.png")
    with pytest.raises(UnreadableImageError) as caught:
        preprocess(path)
    message = str(caught.value)
    assert message.startswith(str(path)) and reason in message


@pytest.mark.parametrize("shape", [(28,), (2, 28, 28, 1), (28, 28, 2), (0, 5)])
def test_arrays_that_are_not_images_are_refused(shape):
    with pytest.raises(UnreadableImageError, match="not an image"):
        preprocess(np.zeros(shape, dtype=np.uint8))


def test_steps_are_ordered_pictures_ending_in_the_network_input():
    steps = preprocess_steps(photo(500, 400))
    assert list(steps) == [
        "grayscale",
        "background",
        "ink",
        "cleaned",
        "cropped",
        "scaled",
        "centred",
    ]
    assert steps["grayscale"].shape == (
        205,
        256,
    )  # big photos are shrunk to a 256 px working size
    assert max(steps["scaled"].shape) == 20 and steps["centred"].shape == (28, 28)
    assert all(step.dtype == np.float32 for step in steps.values())
    expected = (torch.from_numpy(steps["centred"]) / 255 - MNIST_MEAN) / MNIST_STD
    assert torch.allclose(preprocess(photo(500, 400))[0], expected)


def test_a_real_mnist_digit_photographed_on_grey_paper_comes_back_unchanged():
    """The proof the pipeline redoes MNIST's recipe: invert real test digits to dark ink, put them off-centre
    on a bigger, unevenly lit grey sheet, and the preprocessing recovers the original 28x28 images."""
    from mnist_helpers.data import mnist_tensors

    images, _ = mnist_tensors(train=False, limit=8)
    rng = np.random.default_rng(0)
    for original in images[:, 0].numpy().astype(np.float32):
        sheet = (
            np.full((150, 230), 175, dtype=np.float32)
            + np.linspace(-25, 25, 230)[None, :]
        )
        top, left = 20 + rng.integers(0, 90), 15 + rng.integers(0, 180)
        sheet[top : top + 28, left : left + 28] -= (
            original / 255 * 140
        )  # dark ink, lighter where MNIST is grey
        sheet += rng.normal(0, 2, sheet.shape)
        recovered = unnormalised(preprocess(np.clip(sheet, 0, 255).astype(np.uint8)))
        assert correlation(recovered, original) > 0.8


class TinyNet(torch.nn.Module):
    """Predicts from the mean brightness: enough to check batching, order and probabilities."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(1, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.batch_sizes = getattr(self, "batch_sizes", []) + [len(x)]
        return self.linear(x.mean(dim=(1, 2, 3)).unsqueeze(1))


def test_predict_batches_images_and_keeps_their_order(tmp_path):
    torch.manual_seed(0)
    model = TinyNet().train()
    images = [photo(120, 90, shape=s) for s in "7047"] + [
        Image.fromarray(photo(60, 60, shape="0"))
    ]
    results = predict(model, images, batch_size=3)
    assert model.batch_sizes == [3, 2] and model.training, (
        "batched, and the caller's mode is restored"
    )
    assert len(results) == 5 and all(isinstance(r, Prediction) for r in results)
    expected = (
        torch.softmax(model(torch.stack([preprocess(i) for i in images])), dim=1)
        .detach()
        .numpy()
    )
    for result, probabilities in zip(results, expected):
        label, probs = result.label, result.probabilities
        assert result.frame is not None and result.frame.shape == (28, 28)
        assert probs.shape == (10,) and np.isclose(probs.sum(), 1)
        assert label == int(probabilities.argmax()) and np.allclose(
            probs, probabilities, atol=1e-5
        )
        assert result.confidence == pytest.approx(probs.max())


def test_one_bad_image_does_not_lose_the_others(tmp_path):
    good = tmp_path / "good.png"
    Image.fromarray(photo()).save(good)
    blank = tmp_path / "blank.png"
    Image.new("L", (50, 50), 255).save(blank)
    missing = tmp_path / "missing.png"
    model = TinyNet()
    with pytest.raises(NoInkError, match="blank.png"):
        predict(model, [good, blank, good])
    results = predict(model, [good, blank, missing, good], on_error="collect")
    assert isinstance(results[0], Prediction) and isinstance(results[3], Prediction)
    assert isinstance(results[1], NoInkError) and isinstance(
        results[2], UnreadableImageError
    )
    assert predict(model, [blank], on_error="collect")[0].source == str(blank)
    assert predict(model, []) == []
    with pytest.raises(TypeError, match="list of images"):
        predict(model, good)


def test_real_handwriting_from_other_writers_is_never_rejected():
    """scikit-learn's UCI digits (8x8, 13 writers MNIST never saw), saved as a user would: 96x96, dark ink on
    white paper, the digit filling the picture. Each one must give a digit, not "no digit found"."""
    from sklearn.datasets import load_digits

    for cells in load_digits().images[
        ::9
    ]:  # 200 of the 1,797, every digit and every writer's share
        picture = Image.fromarray((255 - cells * 255 / 16).astype(np.uint8)).resize(
            (96, 96), Image.Resampling.BICUBIC
        )
        assert_mnist_like(preprocess(picture))


def test_strokes_thinner_than_mnist_are_thickened_and_thick_ones_left_alone():
    from mnist_helpers.inference import MIN_STROKE, stroke_width

    def relative_width(pen: int) -> float:
        mask = Image.new("L", (400, 400), 0)
        ImageDraw.Draw(mask).line(
            [(100, 60), (300, 60), (170, 340)], fill=255, width=pen
        )
        cleaned = preprocess_steps(255 - np.asarray(mask))["cleaned"] > 0
        rows, cols = np.nonzero(cleaned)
        return stroke_width(cleaned) / (max(np.ptp(rows), np.ptp(cols)) + 1)

    assert (
        relative_width(2) >= MIN_STROKE - 0.02
    )  # a hairline is grown to MNIST's thinnest strokes
    assert relative_width(40) == pytest.approx(
        40 / 296, rel=0.25
    )  # a marker keeps its width


# photos people actually take (issue 24) ------------------------------------------------------------


def test_a_white_sheet_on_a_dark_desk_reads_like_the_digit_on_paper():
    on_paper = photo(200, 200, box=(0.35, 0.3, 0.65, 0.7), paper=225, ink=40)
    desk = np.full((300, 340), 45, dtype=np.uint8)  # dark wood all round the sheet
    desk[50:250, 70:270] = on_paper
    steps = preprocess_steps(desk)
    assert steps["grayscale"].shape[0] <= 200  # the sheet, cut from the desk
    assert correlation(steps["centred"], preprocess_steps(on_paper)["centred"]) > 0.9


@pytest.mark.parametrize("squared", [False, True], ids=["ruled", "squared"])
def test_printed_lines_of_ruled_and_squared_paper_are_removed(squared):
    clean = photo(300, 240, box=(0.35, 0.25, 0.6, 0.75), paper=215, ink=35)
    lined = clean.copy()
    # faint printed lines under the ink, one pixel thick, every 24 px
    lined[10::24, :] = np.minimum(lined[10::24, :], 150)
    if squared:
        lined[:, 7::24] = np.minimum(lined[:, 7::24], 150)
    assert (
        correlation(
            preprocess_steps(lined)["centred"], preprocess_steps(clean)["centred"]
        )
        > 0.9
    )


def test_two_digits_side_by_side_are_named_not_guessed():
    pixels = photo(400, 200, box=(0.1, 0.2, 0.35, 0.8), shape="7")
    second = photo(400, 200, box=(0.6, 0.2, 0.85, 0.8), shape="4")
    with pytest.raises(SeveralMarksError, match="I see 2 marks side by side"):
        preprocess(np.minimum(pixels, second))


def test_a_lone_dot_is_not_a_digit():
    pixels = np.full((100, 100), 210, dtype=np.uint8)
    pixels[48:51, 48:51] = 30  # a 3x3 dot
    with pytest.raises(NoInkError, match="3x3 pixels, too small to be a digit"):
        preprocess(pixels)


def test_a_digit_with_a_broken_stroke_is_still_one_digit():
    pixels = photo(300, 200, box=(0.3, 0.2, 0.6, 0.8), shape="4")
    pixels[:, 150:152] = 185  # a gap of 2 px across the strokes
    assert_mnist_like(preprocess(pixels))


@pytest.mark.parametrize("kind", ["GIF", "TIFF"])
def test_multi_frame_files_are_refused_with_how_to_pick_one(tmp_path, kind):
    frames = [Image.fromarray(photo(shape=shape)) for shape in ("7", "0")]
    path = tmp_path / f"two.{kind.lower()}"
    frames[0].save(path, format=kind, save_all=True, append_images=frames[1:])
    with pytest.raises(UnreadableImageError, match="holds 2 frames .*seek"):
        preprocess(path)


def test_an_opened_multi_frame_image_is_refused_like_its_file(tmp_path):
    frames = [Image.fromarray(photo(shape=shape)) for shape in ("7", "0")]
    path = tmp_path / "two.gif"
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:])
    with (
        Image.open(path) as opened,
        pytest.raises(UnreadableImageError, match="holds 2 frames"),
    ):
        preprocess(opened)


def test_a_single_frame_gif_is_read():
    image = Image.fromarray(photo()).convert("P")
    assert_mnist_like(preprocess(image))
