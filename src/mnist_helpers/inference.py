"""Make a photo of a handwritten digit look like an MNIST digit, then classify it.

A network that scores 99% on MNIST still gets a phone photo wrong, because MNIST digits are not photos:
they are white ink on a black background, strokes two to three pixels wide, the ink scaled into a 20x20
box and that box placed in a 28x28 frame so that the ink's centre of mass sits at the centre. A photo is
dark ink on grey paper, of any size, lit unevenly, with the digit wherever the reader held the phone.
:func:`preprocess_steps` redoes MNIST's recipe on such a photo one small step at a time (chapter 8 shows
each step as a picture) with SciPy's standard image tools (``scipy.ndimage``), and :func:`preprocess` is
the same pipeline returning just the network's input.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from scipy import ndimage

from mnist_helpers.data import MNIST_MEAN, MNIST_STD, normalize
from mnist_helpers.evaluation import predict_probabilities

FRAME_SIZE = 28  # MNIST images are 28x28 ...
DIGIT_BOX = 20  # ... and the ink's longer side is scaled to 20 px, leaving a 4 px margin for centring.
WORKING_SIZE = (
    256  # longer side we shrink big photos to; the digit ends up 20 px tall anyway
)
PAPER_WINDOW = 0.3  # the paper is estimated over windows this share of the image wide: wider than a stroke
MIN_CONTRAST = 16.0  # grey levels (0-255) ink must differ from the paper by, at its darkest, to be a digit
MIN_INK_PIXELS = 4  # the digit must cover at least this many pixels
SPECK_FRACTION = (
    0.05  # ink blobs smaller than this share of the biggest blob are dust, not digit
)
MIN_STROKE = 0.09  # MNIST strokes are 9% (its thinnest tenth) to 19% of the digit's size; thinner get thickened
MAX_IMAGE_PIXELS = (
    Image.MAX_IMAGE_PIXELS or 89_478_485
)  # Pillow's decompression-bomb guard, in pixels

ImageInput = str | Path | Image.Image | np.ndarray


class ImagePreprocessError(ValueError):
    """An input could not be turned into an MNIST-style digit; ``source`` names the input."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


class UnreadableImageError(ImagePreprocessError):
    """The file (or array) is not an image we can read: missing, truncated, too big, not an image format."""


class NoInkError(ImagePreprocessError):
    """The image is readable but holds no digit: blank, uniform, just noise, or a mark too small."""


class SeveralMarksError(ImagePreprocessError):
    """The image holds several marks that could each be a digit: answering would be a guess."""


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
        return (
            str(filename)
            if filename
            else f"<PIL image {image.mode} {image.width}x{image.height}>"
        )
    if isinstance(image, np.ndarray):
        return f"<array {tuple(image.shape)} {image.dtype}>"
    return f"<{type(image).__name__}>"


def load_image(image: ImageInput, source: str) -> Image.Image:
    """Open a path, or wrap an array, as a PIL image, turned upright as the phone meant it.

    Phones store photos sideways and record the rotation in an EXIF tag; ``exif_transpose`` applies it,
    otherwise a 7 would reach the network lying on its side.
    """
    if isinstance(image, Image.Image):
        _refuse_several_frames(image, source)  # an opened GIF or TIFF, as from a file
        return ImageOps.exif_transpose(image)
    if isinstance(image, np.ndarray):
        return _array_to_image(image, source)
    if not isinstance(image, (str, Path)):
        raise UnreadableImageError(
            source,
            "expected a file path, a PIL image or a NumPy array, got "
            + type(image).__name__,
        )
    try:
        with (
            warnings.catch_warnings()
        ):  # Pillow warns about big images; _refuse_huge says it in one line
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(Path(image))
        with opened:
            _refuse_huge(opened.width, opened.height, source)
            _refuse_several_frames(opened, source)
            opened.draft(
                "L", (WORKING_SIZE, WORKING_SIZE)
            )  # a JPEG decodes at a reduced size: faster
            opened.load()  # decode now, so a truncated file fails here and not later
            return ImageOps.exif_transpose(opened)
    except FileNotFoundError:
        raise UnreadableImageError(source, "file not found") from None
    except IsADirectoryError:
        raise UnreadableImageError(source, "is a folder, not an image file") from None
    except (
        Image.DecompressionBombError
    ) as error:  # a size Pillow refuses before we could even look
        raise UnreadableImageError(
            source, f"image too big to decode safely: {error}; {_SHRINK_HINT}"
        ) from None
    except UnidentifiedImageError:
        raise UnreadableImageError(
            source,
            "not an image file Pillow can read (is it a PNG or JPEG, and complete?)",
        ) from None
    except (
        OSError,
        SyntaxError,
        ValueError,
    ) as error:  # truncated or corrupt data inside a real image
        raise UnreadableImageError(
            source, f"cannot decode the image ({error})"
        ) from None


_SHRINK_HINT = (
    "shrink it (a digit needs no more than about 1000x1000 pixels) and try again"
)


def _refuse_huge(width: int, height: int, source: str) -> None:
    """Refuse images over Pillow's decompression-bomb limit *before* decoding them.

    A 67-byte PNG can claim 20000x20000 pixels; decoding it would take gigabytes of memory. A real
    200-megapixel phone photo is not a bomb, but its digit needs no more than a megapixel either.
    """
    if width * height > MAX_IMAGE_PIXELS:
        raise UnreadableImageError(
            source,
            f"image too big to decode safely: {width}x{height} pixels ({width * height / 1e6:.0f} "
            f"megapixels), more than Pillow's limit of {MAX_IMAGE_PIXELS / 1e6:.0f}; {_SHRINK_HINT}",
        )


def _refuse_several_frames(image: Image.Image, source: str) -> None:
    """An animated GIF or a multi-page TIFF holds several pictures; reading the first one silently would
    answer for a picture the reader may not have meant, so they are asked to pick one."""
    frames = getattr(image, "n_frames", 1)
    if frames > 1:
        raise UnreadableImageError(
            source,
            f"holds {frames} frames (an animation or a multi-page file); save the one with the digit "
            "as its own image, e.g. python -c \"from PIL import Image; im = Image.open('IN'); "
            "im.seek(0); im.save('digit.png')\" (seek(N) picks frame N, from 0)",
        )


def _array_to_image(array: np.ndarray, source: str) -> Image.Image:
    """Accept (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) arrays, uint8 or floats in [0, 1] or [0, 255]."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if (
        array.ndim not in (2, 3)
        or (array.ndim == 3 and array.shape[2] not in (3, 4))
        or array.size == 0
    ):
        raise UnreadableImageError(
            source,
            f"an array of shape {tuple(array.shape)} is not an image: expected (H, W), "
            "(H, W, 3) for RGB or (H, W, 4) for RGBA",
        )
    _refuse_huge(array.shape[1], array.shape[0], source)
    values = array.astype(np.float32)
    if not np.isfinite(values).all():
        raise UnreadableImageError(source, "the array contains NaN or infinite values")
    if array.dtype == np.bool_ or (array.dtype.kind == "f" and values.max() <= 1.0):
        values = (
            values * 255.0
        )  # booleans and [0, 1] floats (ToTensor's range) -> 0..255
    elif values.max() > 255:
        values = values * (255.0 / values.max())  # 16-bit scans
    pixels = np.clip(values, 0, 255).round().astype(np.uint8)
    return Image.fromarray(
        pixels
    )  # uint8 (H, W) -> "L", (H, W, 3) -> "RGB", (H, W, 4) -> "RGBA"


def to_grayscale(image: Image.Image) -> np.ndarray:
    """Grey levels 0..255 as float32, with transparent pixels laid on paper that contrasts with the ink.

    A PNG exported from a drawing app is strokes on a transparent background, and the colour hidden under
    the transparency is arbitrary. Black strokes are laid on white paper, white strokes on black: either
    way the strokes stay visible (laying white strokes on white would leave nothing to read).
    """
    if image.mode in (
        "I",
        "I;16",
        "I;16B",
        "F",
    ):  # 16-bit / float scans: rescale to 0..255 ourselves
        values = np.asarray(image, dtype=np.float32)
        peak = values.max()
        return values * (255.0 / peak) if peak > 0 else values
    if image.mode in ("RGBA", "LA", "PA") or (
        image.mode == "P" and "transparency" in image.info
    ):
        rgba = image.convert("RGBA")
        alpha = np.asarray(rgba, dtype=np.float32)[..., 3]
        grey = np.asarray(rgba.convert("L"), dtype=np.float32)
        ink_grey = (grey * alpha).sum() / max(
            alpha.sum(), 1.0
        )  # mean grey of what is visible
        paper = Image.new(
            "RGBA",
            rgba.size,
            (255, 255, 255, 255) if ink_grey < 128 else (0, 0, 0, 255),
        )
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
    return np.asarray(
        Image.fromarray(gray.astype(np.float32)).resize(size, Image.Resampling.BOX),
        dtype=np.float32,
    )


def noise_level(image: np.ndarray) -> np.ndarray:
    """Pixel noise at every pixel: the median departure from a 3x3 median over a 9x9 neighbourhood, scaled
    to a standard deviation.

    Strokes and shadows change slowly from pixel to pixel, noise does not, and the medians ignore the few
    pixels on a stroke's edge. Measured locally, and never below the whole image's level, because the
    noise differs across a photo: dividing by the paper's brightness (:func:`ink_on_black`) magnifies it
    where the paper is dark.
    """
    departures = np.abs(image - ndimage.median_filter(image, size=3))
    typical = max(
        float(np.median(departures)), 1 / 1.4826
    )  # nowhere quieter than the image as a whole
    return 1.4826 * np.maximum(ndimage.median_filter(departures, size=9), typical)


SHEET_MIN_SHARE = 0.15  # a sheet on a desk covers at least this share of the photo ...
SHEET_MAX_BORDER = (
    0.5  # ... and less than this share of its border (else the border is paper anyway)
)
SHEET_MIN_RATIO = (
    1.6  # ... and is this many times brighter than the desk (lighting alone is not)
)


def _otsu(values: np.ndarray) -> float:
    """The grey level that best splits ``values`` into two classes (Otsu's method, on 256 bins)."""
    counts, edges = np.histogram(values, bins=256, range=(0, 256))
    weight = np.cumsum(counts).astype(np.float64)
    total, mass = weight[-1], np.cumsum(counts * edges[:-1])
    between = (mass[-1] * weight - total * mass) ** 2 / np.maximum(
        weight * (total - weight), 1
    )
    return float(edges[int(np.argmax(between)) + 1])


def isolate_paper(gray: np.ndarray) -> np.ndarray:
    """The sheet of paper alone, when the photo shows a bright sheet on a darker desk; else ``gray``.

    Every later step reads the paper's grey on the photo's border. A white sheet on a dark desk breaks
    that: the desk is taken for paper and the whole sheet for ink. The sheet is the largest bright
    region (Otsu's threshold, then ``ndimage.label``) when it is big, mostly away from the border and
    much brighter than the desk, and has ink on it (holes, filled by ``binary_fill_holes``; the bright
    inside of a 0 filling a tight crop has none): it is then cut out, and what is left of the desk in
    its bounding box painted the paper's grey.
    """
    smooth = ndimage.uniform_filter(gray, 5)
    labels, count = ndimage.label(smooth > _otsu(smooth))
    if count == 0:
        return gray
    sheet = labels == 1 + int(np.argmax(np.bincount(labels.ravel())[1:]))
    border = np.concatenate([sheet[0], sheet[-1], sheet[:, 0], sheet[:, -1]])
    grey_border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if sheet.mean() < SHEET_MIN_SHARE or border.mean() >= SHEET_MAX_BORDER:
        return gray
    paper, desk = float(np.median(gray[sheet])), float(np.median(grey_border[~border]))
    if paper < SHEET_MIN_RATIO * max(desk, 1.0):
        return gray
    filled = ndimage.binary_fill_holes(sheet)
    if (
        np.count_nonzero(filled & ~sheet) < MIN_INK_PIXELS
    ):  # no ink on it: the inside of a 0, say
        return gray
    sheet = ndimage.binary_erosion(filled, iterations=3)
    if not sheet.any():  # a sheet too small to trim
        return gray
    rows, cols = ndimage.find_objects(sheet.astype(np.uint8))[0]
    return np.where(sheet, gray, paper)[rows, cols].astype(np.float32)


def ink_is_dark(gray: np.ndarray) -> bool:
    """Pen on paper (True) or chalk on a board (False)? The ink is the extreme farther from the paper.

    The paper's grey is read on the image's border, which the digit rarely covers; ink is then either much
    darker (the darkest 1% of pixels) or much brighter (the brightest 1%) than that.
    """
    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    paper = float(np.median(border))
    darkest, brightest = np.percentile(gray, [1, 99])
    return paper - darkest >= brightest - paper


def estimate_background(gray: np.ndarray, dark_ink: bool) -> np.ndarray:
    """The paper without the ink: a morphological closing (opening for light ink) of the smoothed photo.

    A closing replaces each pixel by the brightest pixel within a window, then the darkest within the
    same window: anything darker and narrower than the window (a pen stroke) disappears, while the paper's
    lighting survives, including a sharp shadow edge (a polynomial fit, or a blur, would smear it into
    the ink). The window is 30% of the image: wider than any stroke of a digit that fills the picture.
    """
    window = max(3, round(PAPER_WINDOW * min(gray.shape)) | 1)
    smoothed = ndimage.median_filter(gray, size=3)
    morphology = ndimage.grey_closing if dark_ink else ndimage.grey_opening
    return morphology(smoothed, size=(window, window)).astype(np.float32)


def ink_on_black(
    gray: np.ndarray, background: np.ndarray, dark_ink: bool
) -> np.ndarray:
    """Ink strength per pixel (0 = paper, 255 = full contrast), white on black as in MNIST.

    A shadow does not subtract light, it multiplies it: pen on paper in shadow is as dark *relative to
    the paper around it* as in the light. So ink is measured as a share of the paper's brightness,
    ``(paper - photo) / paper``, and a digit crossing a shadow's edge keeps one stroke strength. Light ink
    (chalk) is measured the same way on the inverted photo, so both polarities give the same digit.
    """
    if not dark_ink:
        gray, background = 255 - gray, 255 - background
    contrast = (background - gray) / np.maximum(background, 16.0)
    return np.clip(255 * contrast, 0, 255).astype(np.float32)


LINE_SPAN = 0.75  # a printed line crosses at least this share of the photo ...
LINE_THICKNESS = 0.03  # ... is at most this share of it thick ...
MIN_RULED_LINES = (
    3  # ... and ruled or squared paper has several: one long stroke may be a tall 1
)


def remove_printed_lines(ink: np.ndarray) -> np.ndarray:
    """The ink without the long straight lines of ruled or squared paper.

    A grey opening with a line ``LINE_SPAN`` of the photo long keeps only what is straight and that long.
    Printed lines are also thin (``LINE_THICKNESS`` of the photo at most) and come in numbers: they are
    subtracted only when there are at least ``MIN_RULED_LINES`` such thin bands in one direction, so the
    thick bars of a 3 or a 5 filling a tightly cropped picture are never taken for paper. Where a stroke
    crosses a line, the stroke's ink above the line's stays.
    """
    printed = np.zeros_like(ink)
    for axis in (
        1,
        0,
    ):  # horizontal lines, then vertical ones, both found on the whole ink
        length = max(3, round(LINE_SPAN * ink.shape[axis]))
        lines = ndimage.grey_opening(
            ink, size=(1, length) if axis == 1 else (length, 1)
        )
        bands, count = ndimage.label((lines > MIN_CONTRAST).any(axis=axis))
        thin_band = np.bincount(bands, minlength=count + 1) <= max(
            2, LINE_THICKNESS * ink.shape[1 - axis]
        )
        thin_band[0] = False  # label 0: rows (columns) without a line
        if np.count_nonzero(thin_band) >= MIN_RULED_LINES:
            keep = thin_band[bands]
            printed = np.maximum(
                printed, lines * (keep[:, None] if axis == 1 else keep[None, :])
            )
    return np.clip(ink - printed, 0, 255).astype(np.float32)


def keep_digit(ink: np.ndarray, noise: np.ndarray, source: str) -> np.ndarray:
    """The digit's pixels (a boolean mask): hysteresis thresholding plus removal of specks.

    Stroke cores are pixels that stand clearly out of the local ``noise`` and reach at least half the
    strongest ink (both measured slightly blurred, so that one noisy pixel is not "the strongest"); a stroke
    continues through any connected pixel 3 noise levels above the paper, so a faint, thin pen line is
    followed to its end instead of being cut in pieces. Connected blobs (``ndimage.label``) without a core,
    or far smaller than the biggest, are dust. Raises :class:`NoInkError` when nothing ink-like is left.
    """
    blurred = ndimage.gaussian_filter(ink, 1.0)
    significant = (
        blurred > 4 * noise
    )  # far above the noise even after the blur (which divides it by ~3.5)
    peak = float(blurred[significant].max()) if significant.any() else 0.0
    if peak < MIN_CONTRAST:
        raise NoInkError(source, _NO_INK_HINT)
    cores = significant & (blurred > 0.5 * peak)
    blobs, count = ndimage.label(
        cores | (ink > np.maximum(3 * noise, 0.1 * peak)), structure=np.ones((3, 3))
    )
    sizes = np.bincount(blobs.ravel(), minlength=count + 1)
    sizes[
        np.bincount(blobs.ravel(), weights=cores.ravel(), minlength=count + 1) == 0
    ] = 0  # no core: noise
    sizes[0] = 0  # label 0 is the paper
    if sizes.max() < MIN_INK_PIXELS:
        raise NoInkError(source, _NO_INK_HINT)
    return (sizes >= SPECK_FRACTION * sizes.max())[blobs]


MIN_DIGIT_SIZE = (
    8  # px at working size: a mark smaller than this is a dot or a speck, not a digit
)
MARK_SHARE = (
    0.4  # blobs this share of the biggest, or bigger, could each be a digit ...
)
MARK_GAP = (
    0.1  # ... when paper this share of the biggest's size, at least, separates them
)


def _column_groups(boxes: list[tuple[slice, slice]], gap: int) -> int:
    """How many side-by-side groups the boxes form: boxes whose columns overlap, or are less than
    ``gap`` pixels apart (a stroke broken by the pen), belong together."""
    groups, right = 0, -gap
    for _, cols in sorted(boxes, key=lambda box: box[1].start):
        groups += cols.start >= right + gap
        right = max(right, cols.stop)
    return groups


def check_marks(mask: np.ndarray, source: str) -> None:
    """Refuse to guess when the kept ink is not one digit: too small, or several digit-sized marks.

    A lone dot is stretched to 20 px and read as a confident "2"; two digits side by side are squeezed
    into one frame. Both get an answer that names what was seen instead. Pieces of one digit (a 5's
    detached bar, a broken stroke) overlap in columns and count as one; a second mark beside the digit,
    or one running off the photo's edge beside it (a cut-off neighbour, a finger), does not. Ink that
    touches the edge is otherwise accepted: tightly cropped pictures (MNIST's own, UCI's, where 395 of
    400 touch two edges) always do, and a cut-off digit cannot be told from them.
    """
    blobs, _ = ndimage.label(mask, structure=np.ones((3, 3)))
    boxes = ndimage.find_objects(blobs)
    sizes = np.bincount(blobs.ravel())[1:]
    rows, cols = boxes[int(np.argmax(sizes))]
    height, width = rows.stop - rows.start, cols.stop - cols.start
    if max(height, width) < MIN_DIGIT_SIZE:
        raise NoInkError(
            source,
            f"no digit: the only mark is {width}x{height} pixels, too small to be a digit (a dot or a "
            "speck); photograph the digit closer, or crop the photo to it",
        )
    marks = [box for box, size in zip(boxes, sizes) if size >= MARK_SHARE * sizes.max()]
    groups = _column_groups(marks, gap=max(2, round(MARK_GAP * max(height, width))))
    if groups > 1:
        at_edge = sum(_touches_edge(box, mask.shape) for box in marks)
        raise SeveralMarksError(
            source,
            f"I see {groups} marks side by side, not one digit"
            + f" ({at_edge} running off the edge of the photo)" * (at_edge > 0)
            + "; crop the photo to the one digit to read, with some paper around it",
        )


def _touches_edge(box: tuple[slice, slice], shape: tuple[int, ...]) -> bool:
    rows, cols = box
    return (
        rows.start == 0
        or cols.start == 0
        or rows.stop == shape[0]
        or cols.stop == shape[1]
    )


_NO_INK_HINT = (
    "no digit found (the image is blank, uniform or only noise): photograph the digit closer, "
    "with a thicker pen or more light"
)


def stroke_width(mask: np.ndarray) -> float:
    """Average stroke width in pixels, from the mean distance of ink pixels to the paper.

    Across a stroke w pixels wide the distance to the nearest paper pixel (``distance_transform_edt``)
    runs 1, 2, ... up to about w/2 and back down, averaging about (w + 2) / 4. One-pixel holes left by
    noise are closed first (``binary_closing``).
    """
    solid = (
        ndimage.binary_closing(mask, border_value=0) | mask
    )  # noise pinholes would halve the estimate
    return 4 * float(ndimage.distance_transform_edt(solid)[solid].mean()) - 2


def clean_ink(ink: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The digit on black, strokes at 255, thickened to MNIST's stroke width when the pen was thin.

    MNIST's strokes are saturated with grey edges, and a grey pencil should look no fainter than a black
    marker, nor a stroke in shadow fainter than one in the light: so each pixel is scaled by the strongest
    ink near it (``maximum_filter`` over a few stroke widths), and everything over 70% of that is 255,
    which saturates every stroke's core and keeps its soft edge. A ballpoint line on a big sheet would
    shrink to a faint hairline at 20 px, which MNIST never shows, so thin strokes are grown
    (``binary_dilation``) to 9% of the digit's size, as thin as MNIST's strokes get.
    """
    width = max(stroke_width(mask), 1.0)
    ink = np.where(mask, ink, 0)
    nearby_peak = ndimage.maximum_filter(ink, size=round(3 * width) | 1)
    cleaned = (np.clip(ink / np.maximum(0.7 * nearby_peak, 1e-6), 0, 1) * 255).astype(
        np.float32
    )
    rows, cols = np.nonzero(mask)
    missing = MIN_STROKE * (max(np.ptp(rows), np.ptp(cols)) + 1) - width
    if missing >= 2:
        grown = ndimage.binary_dilation(mask, iterations=math.ceil(missing / 2)) & ~mask
        cleaned[grown] = 255
    return cleaned


def crop_to_ink(ink: np.ndarray) -> np.ndarray:
    """The smallest rectangle holding all the ink: MNIST sizes the digit, not the sheet of paper."""
    rows, cols = ndimage.find_objects((ink > 0).astype(np.uint8))[0]
    return ink[rows, cols]


def scale_to_box(ink: np.ndarray, box: int = DIGIT_BOX) -> np.ndarray:
    """Resize so the longer side is ``box`` px, keeping the aspect ratio (a 1 stays thin, as in MNIST).

    Lanczos resampling averages the binary-looking strokes into grey edges the way MNIST's
    anti-aliasing did; its slight overshoot is clipped back to 0..255.
    """
    height, width = ink.shape
    scale = box / max(height, width)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    resized = Image.fromarray(ink.astype(np.float32)).resize(
        size, Image.Resampling.LANCZOS
    )
    return np.clip(np.asarray(resized, dtype=np.float32), 0, 255)


def centre_of_mass(ink: np.ndarray) -> tuple[float, float]:
    """(row, column) of the ink's centre of mass, each pixel weighted by its brightness."""
    row, col = ndimage.center_of_mass(ink)
    return float(row), float(col)


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
    r0, c0 = (
        max(top, 0),
        max(left, 0),
    )  # the part of the digit that lands inside the frame
    r1, c1 = min(top + height, size), min(left + width, size)
    frame[r0:r1, c0:c1] = ink[r0 - top : r1 - top, c0 - left : c1 - left]
    return frame


def normalize_frame(
    frame: np.ndarray, mean: float = MNIST_MEAN, std: float = MNIST_STD
) -> torch.Tensor:
    """0..255 frame -> (1, 28, 28) float tensor standardized exactly like the model's training data.

    Use the ``mean``/``std`` the model was trained with (chapter 5's network used 0.5/0.5): a mismatch
    shifts every input and quietly costs accuracy.
    """
    return normalize(torch.from_numpy(frame.astype(np.float32)), mean, std).unsqueeze(0)


def preprocess_steps(
    image: ImageInput, *, name: str | None = None
) -> dict[str, np.ndarray]:
    """Every intermediate picture of the pipeline, in order, as float32 arrays on a 0..255 scale.

    Keys: ``grayscale`` (working size, transparency laid on paper, a sheet cut from the desk around it),
    ``background`` (the paper without ink), ``ink`` (white ink on black, paper and its printed lines
    removed), ``cleaned`` (digit kept, specks removed, thin
    strokes thickened), ``cropped``, ``scaled`` (longer side 20 px) and ``centred`` (the 28x28 MNIST-style
    digit). ``name`` labels the input in error messages (defaults to the path or a description of it).
    Raises :class:`UnreadableImageError`, :class:`NoInkError` or :class:`SeveralMarksError`, each naming
    the input.
    """
    source = name or describe_source(image)
    grayscale = isolate_paper(
        shrink_to_working_size(to_grayscale(load_image(image, source)))
    )
    dark_ink = ink_is_dark(grayscale)
    background = estimate_background(grayscale, dark_ink)
    ink = remove_printed_lines(ink_on_black(grayscale, background, dark_ink))
    mask = keep_digit(ink, noise_level(ink), source)
    check_marks(mask, source)
    cleaned = clean_ink(ink, mask)
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
    image: ImageInput,
    *,
    name: str | None = None,
    mean: float = MNIST_MEAN,
    std: float = MNIST_STD,
) -> torch.Tensor:
    """A photo (path, PIL image or NumPy array) -> the (1, 28, 28) normalized tensor an MNIST model expects."""
    return normalize_frame(preprocess_steps(image, name=name)["centred"], mean, std)


class ModelOutputError(ValueError):
    """The model answered NaN or infinity: its weights are broken, so no answer can be trusted."""


def classify(
    model: torch.nn.Module, inputs: torch.Tensor, batch_size: int = 256
) -> list[Prediction]:
    """Run already-preprocessed (N, 1, 28, 28) inputs through ``model`` in batches.

    Raises :class:`ModelOutputError` rather than return a "0 at nan%" answer from a broken model.
    """
    probabilities = predict_probabilities(model, inputs.split(batch_size)).numpy()
    if not np.isfinite(probabilities).all():
        raise ModelOutputError(
            "the model's outputs are NaN or infinite, so its answers mean nothing: its weights are broken "
            "(a diverged training run?); retrain it or load another checkpoint"
        )
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
        raise TypeError(
            "predict takes a list of images; for one image use predict(model, [image])"
        )
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
    predictions = iter(
        classify(model, torch.stack(inputs), batch_size) if inputs else []
    )
    return [
        frame
        if isinstance(frame, ImagePreprocessError)
        else next(predictions)._replace(frame=frame)
        for frame in frames
    ]
