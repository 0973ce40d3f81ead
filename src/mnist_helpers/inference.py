"""Make a photo of a handwritten digit look like an MNIST digit, then classify it.

A network that scores 99% on MNIST still gets a phone photo wrong, because MNIST digits are not photos:
they are white ink on a black background, the ink is cropped to a 20x20 box, and that box is placed in a
28x28 frame so that the ink's centre of mass sits at the centre. A photo is dark ink on grey paper, of any
size, lit unevenly, with the digit wherever the reader held the phone. :func:`preprocess_steps` redoes
MNIST's recipe on such a photo one small step at a time (chapter 07 shows each step as a picture) and
:func:`preprocess` is the same pipeline returning just the network's input.
"""

from __future__ import annotations

from collections import deque
from pathlib import Path
from typing import Literal, NamedTuple, Sequence, Union

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from mnist_helpers.data import MNIST_MEAN, MNIST_STD, normalize
from mnist_helpers.evaluation import predict_probabilities

FRAME_SIZE = 28  # MNIST images are 28x28 ...
DIGIT_BOX = 20  # ... and the ink's longer side is scaled to 20 px, leaving a 4 px margin for centring.
WORKING_SIZE = 256  # longer side we shrink big photos to; the digit ends up 20 px tall anyway
MIN_CONTRAST = 24.0  # grey levels ink must differ from the paper by (0-255 scale) to count as ink
MIN_INK_FRACTION = 0.0005  # the digit must cover at least this share of the (working-size) image ...
MIN_INK_PIXELS = 4  # ... and at least this many pixels
SPECK_FRACTION = 0.05  # ink blobs smaller than this share of the biggest blob are dust, not digit

ImageInput = Union[str, Path, Image.Image, np.ndarray]


class ImagePreprocessError(ValueError):
    """An input could not be turned into an MNIST-style digit; ``source`` names the input."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class UnreadableImageError(ImagePreprocessError):
    """The file (or array) is not an image we can read: missing, truncated, not an image format."""


class NoInkError(ImagePreprocessError):
    """The image is readable but holds no digit: blank, uniform or just noise."""


class Prediction(NamedTuple):
    """One image's answer: the predicted digit, the probability of each of the ten classes and, from
    :func:`predict`, the 28x28 MNIST-style frame (0..255) the model was shown."""

    label: int
    probabilities: np.ndarray  # shape (10,), sums to 1
    frame: np.ndarray | None = None

    @property
    def confidence(self) -> float:
        """Probability the model gives its own answer."""
        return float(self.probabilities[self.label])


def describe_source(image: object) -> str:
    """A short name for an input, used in error messages so the reader knows WHICH image failed."""
    if isinstance(image, (str, Path)):
        return str(image)
    if isinstance(image, Image.Image):
        filename = getattr(image, "filename", "")
        return str(filename) if filename else f"<PIL image {image.mode} {image.width}x{image.height}>"
    if isinstance(image, np.ndarray):
        return f"<array {tuple(image.shape)} {image.dtype}>"
    return f"<{type(image).__name__}>"


def load_image(image: ImageInput, source: str) -> Image.Image:
    """Open a path, or wrap an array, as a PIL image, turned upright as the phone meant it.

    Phones store photos sideways and record the rotation in an EXIF tag; ``exif_transpose`` applies it,
    otherwise a 7 would reach the network lying on its side.
    """
    if isinstance(image, Image.Image):
        return ImageOps.exif_transpose(image)
    if isinstance(image, np.ndarray):
        return _array_to_image(image, source)
    if not isinstance(image, (str, Path)):
        raise UnreadableImageError(
            source, "expected a file path, a PIL image or a NumPy array, got " + type(image).__name__
        )
    path = Path(image)
    try:
        with Image.open(path) as opened:
            opened.load()  # decode now, so a truncated file fails here and not later
            return ImageOps.exif_transpose(opened)
    except FileNotFoundError:
        raise UnreadableImageError(source, "file not found") from None
    except IsADirectoryError:
        raise UnreadableImageError(source, "is a folder, not an image file") from None
    except UnidentifiedImageError:
        raise UnreadableImageError(
            source, "not an image file Pillow can read (is it a PNG or JPEG, and complete?)"
        ) from None
    except (OSError, SyntaxError, ValueError) as error:  # truncated or corrupt data inside a real image
        raise UnreadableImageError(source, f"cannot decode the image ({error})") from None


def _array_to_image(array: np.ndarray, source: str) -> Image.Image:
    """Accept (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) arrays, uint8 or floats in [0, 1] or [0, 255]."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)) or array.size == 0:
        raise UnreadableImageError(
            source, f"an array of shape {tuple(array.shape)} is not an image: expected (H, W), "
            "(H, W, 3) for RGB or (H, W, 4) for RGBA"
        )
    values = array.astype(np.float32)
    if not np.isfinite(values).all():
        raise UnreadableImageError(source, "the array contains NaN or infinite values")
    if array.dtype == np.bool_ or (array.dtype.kind == "f" and values.max() <= 1.0):
        values = values * 255.0  # booleans and [0, 1] floats (ToTensor's range) -> 0..255
    elif values.max() > 255:
        values = values * (255.0 / values.max())  # 16-bit scans
    pixels = np.clip(values, 0, 255).round().astype(np.uint8)
    return Image.fromarray(pixels)  # uint8 (H, W) -> "L", (H, W, 3) -> "RGB", (H, W, 4) -> "RGBA"


def to_grayscale(image: Image.Image) -> np.ndarray:
    """Grey levels 0..255 as float32, with transparent pixels counted as white paper.

    A PNG exported from a drawing app is often black strokes on a transparent background; dropping the
    alpha channel would leave black on black, so we first lay the image on white paper.
    """
    if image.mode in ("I", "I;16", "I;16B", "F"):  # 16-bit / float scans: rescale to 0..255 ourselves
        values = np.asarray(image, dtype=np.float32)
        peak = values.max()
        return values * (255.0 / peak) if peak > 0 else values
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        paper = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(paper, rgba)
    return np.asarray(image.convert("L"), dtype=np.float32)


def shrink_to_working_size(gray: np.ndarray, longest: int = WORKING_SIZE) -> np.ndarray:
    """Average big photos down so the longer side is at most ``longest`` pixels.

    The digit ends up 20 px tall, so a 12-megapixel photo carries no useful extra detail; averaging
    neighbouring pixels (BOX filter) also smooths the camera's pixel noise and keeps every later step fast.
    """
    height, width = gray.shape
    scale = longest / max(height, width)
    if scale >= 1:
        return gray
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return np.asarray(Image.fromarray(gray.astype(np.float32)).resize(size, Image.Resampling.BOX), dtype=np.float32)


def _surface_terms(height: int, width: int) -> np.ndarray:
    """Columns 1, x, y, x², xy, y² over the pixel grid (coordinates in [-1, 1]): a tilted, gently curved sheet."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    x = 2 * x / max(width - 1, 1) - 1
    y = 2 * y / max(height - 1, 1) - 1
    return np.stack([np.ones_like(x), x, y, x * x, x * y, y * y], axis=-1).reshape(-1, 6)


def _robust_sigma(residuals: np.ndarray) -> float:
    """Noise level from the median absolute deviation: unlike the standard deviation, ink does not inflate it."""
    return max(1.4826 * float(np.median(np.abs(residuals - np.median(residuals)))), 1.0)


def estimate_background(gray: np.ndarray, iterations: int = 5) -> tuple[np.ndarray, float]:
    """Model the paper as a smooth surface, ignoring the ink; return (surface, paper noise level).

    A desk lamp or the phone's shadow makes the paper brighter on one side, so a single "paper grey"
    threshold would swallow half the page. We fit a quadratic surface to the pixels and refit on the pixels
    that lie close to it (the paper), so the ink, which is far from the surface, stops pulling on it.
    """
    terms = _surface_terms(*gray.shape)
    values = gray.reshape(-1).astype(np.float64)
    sigma = _robust_sigma(values)
    is_paper = np.abs(values - np.median(values)) < 2.5 * sigma
    coefficients = np.zeros(terms.shape[1])
    coefficients[0] = np.median(values)  # a flat sheet, if the image is too small to fit anything better
    for _ in range(iterations):
        if is_paper.sum() < terms.shape[1]:
            break
        coefficients, *_ = np.linalg.lstsq(terms[is_paper], values[is_paper], rcond=None)
        residuals = values - terms @ coefficients
        sigma = _robust_sigma(residuals[is_paper])
        is_paper = np.abs(residuals) < 2.5 * sigma
    surface = (terms @ coefficients).reshape(gray.shape).astype(np.float32)
    return surface, sigma


def ink_on_black(gray: np.ndarray, background: np.ndarray, sigma: float) -> np.ndarray:
    """Ink strength per pixel (0 = paper), white ink on black as in MNIST, whatever the photo's polarity.

    Ink is whatever stands out from the paper. If the strong departures are mostly darker than the paper,
    the photo is dark-on-light (pen on paper) and we flip it; if brighter, it is already light-on-dark
    (chalk on a blackboard, an MNIST image). Reading the polarity off the ink itself, rather than asking,
    also works when the digit touches the border.
    """
    difference = gray - background
    cutoff = max(4 * sigma, MIN_CONTRAST)
    brighter = difference[difference > cutoff].sum()
    darker = -difference[difference < -cutoff].sum()
    ink = -difference if darker > brighter else difference
    return np.clip(ink, 0, None)


def otsu_threshold(values: np.ndarray) -> float:
    """The grey level that best splits ``values`` into two groups (Otsu, 1979): here, paper and ink."""
    histogram, edges = np.histogram(np.clip(values, 0, 255), bins=256, range=(0, 256))
    probabilities = histogram / max(histogram.sum(), 1)
    levels = edges[:-1]
    weight_low = np.cumsum(probabilities)
    mean_low = np.cumsum(probabilities * levels)
    total_mean = mean_low[-1]
    weight_high = 1 - weight_low
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (total_mean * weight_low - mean_low) ** 2 / (weight_low * weight_high)
    return float(levels[np.nanargmax(np.nan_to_num(between, nan=-1.0))] + 1)


def _connected_components(mask: np.ndarray) -> list[np.ndarray]:
    """Groups of touching (8-neighbour) True pixels, each as an array of flat indices."""
    height, width = mask.shape
    flat = mask.reshape(-1)
    seen = np.zeros_like(flat)
    components = []
    for start in np.flatnonzero(flat):
        if seen[start]:
            continue
        seen[start] = True
        queue, members = deque([start]), []
        while queue:
            index = queue.popleft()
            members.append(index)
            row, col = divmod(int(index), width)
            for dr in (-1, 0, 1):
                for dc in (-1, 0, 1):
                    r, c = row + dr, col + dc
                    if 0 <= r < height and 0 <= c < width:
                        neighbour = r * width + c
                        if flat[neighbour] and not seen[neighbour]:
                            seen[neighbour] = True
                            queue.append(neighbour)
        components.append(np.asarray(members))
    return components


def _grow(mask: np.ndarray) -> np.ndarray:
    """The mask plus its 8 neighbours (a 3x3 dilation), in plain NumPy."""
    padded = np.pad(mask, 1)
    height, width = mask.shape
    grown = np.zeros_like(mask)
    for dr in range(3):
        for dc in range(3):
            grown |= padded[dr : dr + height, dc : dc + width]
    return grown


def clean_ink(ink: np.ndarray, sigma: float, source: str) -> np.ndarray:
    """Keep the digit's strokes (stroke cores at 255), zero the paper, its noise and isolated specks.

    Otsu's threshold splits ink from paper and marks the strokes' cores. Dust and noise also cross it,
    but as tiny blobs far smaller than the digit, so we drop blobs under 5% of the biggest. The faint
    pixels bordering a kept core are its anti-aliased edge (MNIST's strokes have grey edges too), so they
    keep their grey level; the same faint level away from a stroke is noise and goes to 0.
    Raises :class:`NoInkError` when nothing ink-like is left.
    """
    threshold = max(otsu_threshold(ink), 4 * sigma, MIN_CONTRAST)
    cores = ink > threshold
    if cores.sum() < MIN_INK_PIXELS:
        raise NoInkError(source, _NO_INK_HINT)
    components = _connected_components(cores)
    biggest = max(len(component) for component in components)
    if biggest < max(MIN_INK_PIXELS, MIN_INK_FRACTION * ink.size):
        raise NoInkError(source, _NO_INK_HINT)
    kept = np.zeros(ink.size, dtype=bool)
    for component in components:
        if len(component) >= SPECK_FRACTION * biggest:
            kept[component] = True
    kept = kept.reshape(ink.shape)
    stroke_level = float(np.median(ink[kept]))
    faint_edge = _grow(kept) & (ink > 3 * sigma)
    return np.where(kept | faint_edge, np.clip(ink / stroke_level, 0, 1) * 255, 0).astype(np.float32)


_NO_INK_HINT = (
    "no digit found (the image is blank, uniform or only noise): photograph the digit closer, "
    "with a thicker pen or more light"
)


def crop_to_ink(ink: np.ndarray) -> np.ndarray:
    """The smallest rectangle holding all the ink: MNIST sizes the digit, not the sheet of paper."""
    rows = np.flatnonzero(ink.any(axis=1))
    cols = np.flatnonzero(ink.any(axis=0))
    return ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def scale_to_box(ink: np.ndarray, box: int = DIGIT_BOX) -> np.ndarray:
    """Resize so the longer side is ``box`` px, keeping the aspect ratio (a 1 stays thin, as in MNIST).

    Lanczos resampling averages the binary-looking strokes into grey edges the way MNIST's
    anti-aliasing did; its slight overshoot is clipped back to 0..255.
    """
    height, width = ink.shape
    scale = box / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = Image.fromarray(ink.astype(np.float32)).resize(size, Image.Resampling.LANCZOS)
    return np.clip(np.asarray(resized, dtype=np.float32), 0, 255)


def centre_of_mass(ink: np.ndarray) -> tuple[float, float]:
    """(row, column) of the ink's centre of mass, each pixel weighted by its brightness."""
    total = float(ink.sum())
    rows, cols = np.indices(ink.shape)
    return float((rows * ink).sum() / total), float((cols * ink).sum() / total)


def centre_in_frame(ink: np.ndarray, size: int = FRAME_SIZE) -> np.ndarray:
    """Paste the digit into a size x size black frame with its centre of mass at the frame's centre.

    MNIST centres by mass, not by bounding box: a 7's heavy top bar sits slightly above the middle.
    MNIST's centre of mass averages (14.0, 14.0) in pixel coordinates, so that is where we put ours, using a
    whole-pixel shift (a fractional shift would blur the strokes).
    """
    row, col = centre_of_mass(ink)
    top, left = round(size / 2 - row), round(size / 2 - col)
    frame = np.zeros((size, size), dtype=np.float32)
    height, width = ink.shape
    r0, c0 = max(top, 0), max(left, 0)  # the part of the digit that lands inside the frame
    r1, c1 = min(top + height, size), min(left + width, size)
    frame[r0:r1, c0:c1] = ink[r0 - top : r1 - top, c0 - left : c1 - left]
    return frame


def normalize_frame(frame: np.ndarray, mean: float = MNIST_MEAN, std: float = MNIST_STD) -> torch.Tensor:
    """0..255 frame -> (1, 28, 28) float tensor standardized exactly like the model's training data.

    Use the ``mean``/``std`` the model was trained with (chapter 04's network used 0.5/0.5): a mismatch
    shifts every input and quietly costs accuracy.
    """
    return normalize(torch.from_numpy(frame.astype(np.float32)), mean, std).unsqueeze(0)


def preprocess_steps(image: ImageInput, *, name: str | None = None) -> dict[str, np.ndarray]:
    """Every intermediate picture of the pipeline, in order, as float32 arrays on a 0..255 scale.

    Keys: ``grayscale`` (working size, alpha laid on white), ``background`` (the fitted paper),
    ``ink`` (white ink on black, background removed), ``cleaned`` (thresholded, specks removed),
    ``cropped``, ``scaled`` (longer side 20 px) and ``centred`` (the 28x28 MNIST-style digit).
    ``name`` labels the input in error messages (defaults to the path or a description of the input).
    Raises :class:`UnreadableImageError` or :class:`NoInkError`, both naming the input.
    """
    source = name or describe_source(image)
    grayscale = shrink_to_working_size(to_grayscale(load_image(image, source)))
    background, sigma = estimate_background(grayscale)
    ink = ink_on_black(grayscale, background, sigma)
    cleaned = clean_ink(ink, sigma, source)
    cropped = crop_to_ink(cleaned)
    scaled = scale_to_box(cropped)
    centred = centre_in_frame(scaled)
    return {
        "grayscale": grayscale,
        "background": background,
        "ink": ink,
        "cleaned": cleaned,
        "cropped": cropped,
        "scaled": scaled,
        "centred": centred,
    }


def preprocess(
    image: ImageInput, *, name: str | None = None, mean: float = MNIST_MEAN, std: float = MNIST_STD
) -> torch.Tensor:
    """A photo (path, PIL image or NumPy array) -> the (1, 28, 28) normalized tensor an MNIST model expects."""
    return normalize_frame(preprocess_steps(image, name=name)["centred"], mean, std)


def classify(model: torch.nn.Module, inputs: torch.Tensor, batch_size: int = 256) -> list[Prediction]:
    """Run already-preprocessed (N, 1, 28, 28) inputs through ``model`` in batches."""
    probabilities = predict_probabilities(model, inputs.split(batch_size)).numpy()
    return [Prediction(int(row.argmax()), row) for row in probabilities]


def predict(
    model: torch.nn.Module,
    images: Sequence[ImageInput],
    *,
    batch_size: int = 256,
    mean: float = MNIST_MEAN,
    std: float = MNIST_STD,
    on_error: Literal["raise", "collect"] = "raise",
) -> list[Prediction] | list[Prediction | ImagePreprocessError]:
    """Preprocess each image and classify them all in batches; one result per image, in order.

    ``mean``/``std``: the normalization the model was trained with (see :func:`normalize_frame`).
    With ``on_error="raise"`` the first unusable image raises its :class:`ImagePreprocessError`. With
    ``on_error="collect"`` that image's slot holds the error instead and the other images are still
    classified: one blurry photo in a folder should not cost the reader the other answers.
    """
    if on_error not in ("raise", "collect"):
        raise ValueError(f"on_error must be 'raise' or 'collect', got {on_error!r}")
    if isinstance(images, (str, Path, Image.Image)):
        raise TypeError("predict takes a list of images; for one image use predict(model, [image])")
    frames: list[np.ndarray | ImagePreprocessError] = []
    for image in images:
        try:
            frames.append(preprocess_steps(image)["centred"])
        except ImagePreprocessError as error:
            if on_error == "raise":
                raise
            frames.append(error)
    good = [frame for frame in frames if isinstance(frame, np.ndarray)]
    inputs = [normalize_frame(frame, mean, std) for frame in good]
    predictions = iter(classify(model, torch.stack(inputs), batch_size) if inputs else [])
    return [frame if isinstance(frame, ImagePreprocessError) else next(predictions)._replace(frame=frame)
            for frame in frames]
