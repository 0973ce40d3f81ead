/*
 * The book's draw-a-digit page: the reader draws on a canvas, and chapter 7's SimpleCNN, exported to ONNX
 * in chapter 12, reads the digit in the browser with onnxruntime-web. No server: the model, the runtime
 * and its WebAssembly are files of the site (_static/).
 *
 * The drawing goes through the last three steps of the library's MNIST-style preprocessing
 * (mnist_helpers.inference: crop_to_ink, scale_to_box, centre_in_frame), written here step by step so
 * that the 28x28 image is the one Python would make from the same strokes: crop to the ink, resize the
 * longer side to 20 px with Pillow's Lanczos filter (ported below), put the centre of mass at (14, 14)
 * with Python's rounding. The earlier steps of that pipeline (paper, lighting, specks) are for photos; a
 * canvas has none. site_tests/test_draw_page.py checks the two agree.
 *
 * For tests and for the curious, the page exposes
 *   window.mnistPredict(pixels)   784 numbers (28x28, row-major, 0 = background, 1 = ink)
 *                                 -> Promise of the 10 probabilities;
 *   window.mnistPreprocess(ink, width, height)  ink 0..255 (row-major) -> the 784 numbers the model gets;
 *   window.mnistIdle()            -> Promise resolved when the shown answer is the current drawing's.
 */
(() => {
  "use strict";

  const FRAME = 28; // MNIST's frame ...
  const BOX = 20; // ... and the box the ink's longer side is scaled to (mnist_helpers.inference.DIGIT_BOX)
  const BRUSH = 22; // pen width in canvas pixels: a digit as tall as the canvas gets MNIST-like strokes
  const STATIC = new URL(".", document.currentScript.src); // the site's _static/ folder
  const MODEL_URL = new URL("simplecnn.onnx", STATIC).href;

  // ---------------------------------------------------------------- preprocessing, as in Python

  /** Python's round(): halves go to the even neighbour (round(2.5) == 2), unlike Math.round. */
  function roundHalfEven(x) {
    const floor = Math.floor(x);
    const fraction = x - floor;
    if (fraction !== 0.5) return Math.round(x);
    return floor % 2 === 0 ? floor : floor + 1;
  }

  /** The smallest rectangle holding all the ink (crop_to_ink); null when there is no ink at all. */
  function cropToInk(ink, width, height) {
    let top = height, bottom = -1, left = width, right = -1;
    for (let r = 0; r < height; r++) {
      for (let c = 0; c < width; c++) {
        if (ink[r * width + c] > 0) {
          top = Math.min(top, r); bottom = Math.max(bottom, r);
          left = Math.min(left, c); right = Math.max(right, c);
        }
      }
    }
    if (bottom < 0) return null;
    const w = right - left + 1, h = bottom - top + 1;
    const data = new Float32Array(w * h);
    for (let r = 0; r < h; r++) {
      for (let c = 0; c < w; c++) data[r * w + c] = ink[(r + top) * width + (c + left)];
    }
    return { data, width: w, height: h };
  }

  function sinc(x) {
    if (x === 0) return 1;
    const y = x * Math.PI;
    return Math.sin(y) / y;
  }

  function lanczos(x) {
    return -3 <= x && x < 3 ? sinc(x) * sinc(x / 3) : 0;
  }

  /** Pillow's precompute_coeffs (libImaging/Resample.c): per output pixel, a first input pixel and weights. */
  function coefficients(inSize, outSize) {
    const scale = inSize / outSize;
    const filterScale = Math.max(scale, 1);
    const support = 3 * filterScale;
    const step = 1 / filterScale;
    const size = Math.ceil(support) * 2 + 1;
    const first = new Int32Array(outSize), count = new Int32Array(outSize);
    const weights = new Float64Array(outSize * size);
    for (let out = 0; out < outSize; out++) {
      const centre = (out + 0.5) * scale;
      const lo = Math.max(Math.trunc(centre - support + 0.5), 0);
      const n = Math.min(Math.trunc(centre + support + 0.5), inSize) - lo;
      let total = 0;
      for (let i = 0; i < n; i++) {
        const w = lanczos((i + lo - centre + 0.5) * step);
        weights[out * size + i] = w;
        total += w;
      }
      if (total !== 0) for (let i = 0; i < n; i++) weights[out * size + i] /= total;
      first[out] = lo; count[out] = n;
    }
    return { first, count, weights, size };
  }

  /** One resampling pass along rows (horizontal) or columns; sums in double, stores float32 like Pillow's "F". */
  function resamplePass(image, outWidth, outHeight, horizontal) {
    const k = horizontal ? coefficients(image.width, outWidth) : coefficients(image.height, outHeight);
    const data = new Float32Array(outWidth * outHeight);
    for (let r = 0; r < outHeight; r++) {
      for (let c = 0; c < outWidth; c++) {
        const out = horizontal ? c : r;
        let sum = 0;
        for (let i = 0; i < k.count[out]; i++) {
          const source = k.first[out] + i;
          const pixel = horizontal ? image.data[r * image.width + source] : image.data[source * image.width + c];
          sum += pixel * k.weights[out * k.size + i];
        }
        data[r * outWidth + c] = sum;
      }
    }
    return { data, width: outWidth, height: outHeight };
  }

  /** scale_to_box: longer side to 20 px, aspect kept, Lanczos (Pillow skips an axis whose size is kept). */
  function scaleToBox(image) {
    const scale = BOX / Math.max(image.width, image.height);
    const width = Math.max(1, roundHalfEven(image.width * scale));
    const height = Math.max(1, roundHalfEven(image.height * scale));
    let scaled = image;
    if (width !== image.width) scaled = resamplePass(scaled, width, scaled.height, true);
    if (height !== image.height) scaled = resamplePass(scaled, width, height, false);
    const data = Float32Array.from(scaled.data, (v) => Math.min(Math.max(v, 0), 255));
    return { data, width, height };
  }

  /** centre_in_frame: the ink's centre of mass moved (by whole pixels) to the frame's centre. */
  function centreInFrame(image) {
    let total = 0, rowSum = 0, colSum = 0;
    for (let r = 0; r < image.height; r++) {
      for (let c = 0; c < image.width; c++) {
        const v = image.data[r * image.width + c];
        total += v; rowSum += r * v; colSum += c * v;
      }
    }
    const top = roundHalfEven(FRAME / 2 - rowSum / total);
    const left = roundHalfEven(FRAME / 2 - colSum / total);
    const frame = new Float32Array(FRAME * FRAME);
    for (let r = Math.max(top, 0); r < Math.min(top + image.height, FRAME); r++) {
      for (let c = Math.max(left, 0); c < Math.min(left + image.width, FRAME); c++) {
        frame[r * FRAME + c] = image.data[(r - top) * image.width + (c - left)];
      }
    }
    return frame;
  }

  /** Ink (0..255, row-major) -> the 28x28 MNIST-style frame (0..255), or null when there is no ink. */
  function preprocess(ink, width, height) {
    const cropped = cropToInk(ink, width, height);
    if (cropped === null) return null;
    const scaled = scaleToBox(cropped);
    // Lanczos rings slightly negative just outside a stroke; clipped to 0 it leaves no ink at all only
    // for a lone faint speck, which has no centre of mass.
    return scaled.data.some((v) => v > 0) ? centreInFrame(scaled) : null;
  }

  // ---------------------------------------------------------------- the model

  let session = null;

  function loadModel() {
    if (session === null) {
      ort.env.wasm.wasmPaths = new URL("onnxruntime-web/", STATIC).href;
      ort.env.wasm.numThreads = 1; // threads need cross-origin isolation, which a plain static site lacks
      session = ort.InferenceSession.create(MODEL_URL, { executionProviders: ["wasm"] });
    }
    return session;
  }

  function softmax(logits) {
    const peak = Math.max(...logits);
    const exps = Array.from(logits, (v) => Math.exp(v - peak));
    const total = exps.reduce((a, b) => a + b, 0);
    return exps.map((v) => v / total);
  }

  /** The 10 probabilities for a 28x28 frame of grey levels 0..255 (what the ONNX model takes). */
  async function probabilities(frame) {
    const model = await loadModel();
    const input = new ort.Tensor("float32", Float32Array.from(frame), [1, 1, FRAME, FRAME]);
    const output = await model.run({ pixels: input });
    return softmax(output.logits.data);
  }

  async function mnistPredict(pixels) {
    if (!pixels || pixels.length !== FRAME * FRAME || !Array.from(pixels).every(Number.isFinite)) {
      throw new TypeError(`mnistPredict takes ${FRAME * FRAME} finite numbers (a 28x28 image, row-major, 0..1)`);
    }
    return probabilities(Array.from(pixels, (v) => v * 255));
  }

  window.mnistPredict = mnistPredict;
  window.mnistPreprocess = (ink, width, height) => {
    const frame = preprocess(ink, width, height);
    return frame === null ? null : Array.from(frame, (v) => v / 255);
  };

  // ---------------------------------------------------------------- the page

  const canvas = document.getElementById("digit-canvas");
  const clearButton = document.getElementById("digit-clear");
  const answer = document.getElementById("digit-prediction");
  const top3 = document.getElementById("digit-top3");
  const preview = document.getElementById("digit-preview");
  const status = document.getElementById("digit-status");
  // The page's own words (data-* attributes of the status line), so a translated page needs no other script.
  const message = (key, english) => status.dataset[key] || english;
  const pen = canvas.getContext("2d", { willReadFrequently: true });

  function clearCanvas() {
    pen.fillStyle = "#ffffff";
    pen.fillRect(0, 0, canvas.width, canvas.height);
  }

  /** Ink per canvas pixel, 0..255: black pen on white paper, turned into MNIST's white on black. */
  function canvasInk() {
    const rgba = pen.getImageData(0, 0, canvas.width, canvas.height).data;
    const ink = new Uint8ClampedArray(canvas.width * canvas.height);
    for (let i = 0; i < ink.length; i++) ink[i] = 255 - rgba[4 * i];
    return ink;
  }

  function showFrame(frame) {
    const small = document.createElement("canvas");
    small.width = small.height = FRAME;
    const pixels = small.getContext("2d").createImageData(FRAME, FRAME);
    frame.forEach((v, i) => {
      const grey = Math.round(v);
      pixels.data.set([grey, grey, grey, 255], 4 * i);
    });
    small.getContext("2d").putImageData(pixels, 0, 0);
    const view = preview.getContext("2d");
    view.imageSmoothingEnabled = false;
    view.drawImage(small, 0, 0, preview.width, preview.height);
  }

  function showAnswer(probs) {
    const ranked = probs.map((p, digit) => ({ digit, p })).sort((a, b) => b.p - a.p).slice(0, 3);
    answer.textContent = String(ranked[0].digit);
    top3.replaceChildren(...ranked.map(({ digit, p }) => {
      const row = document.createElement("li");
      const bar = document.createElement("span");
      bar.className = "digit-bar";
      bar.style.width = `${(100 * p).toFixed(1)}%`;
      row.append(`${digit}: ${(100 * p).toFixed(1)}%`, bar);
      return row;
    }));
  }

  function showNothing() {
    answer.textContent = "";
    top3.replaceChildren();
    const view = preview.getContext("2d");
    view.fillStyle = "#000000";
    view.fillRect(0, 0, preview.width, preview.height);
  }

  // Predictions run one at a time; strokes drawn meanwhile are read by the next one.
  let running = false, dirty = false, waiting = [];

  async function update() {
    const frame = preprocess(canvasInk(), canvas.width, canvas.height);
    if (frame === null) { showNothing(); return; }
    showFrame(frame);
    showAnswer(await probabilities(frame));
  }

  async function requestUpdate() {
    dirty = true;
    if (running) return;
    running = true;
    try {
      while (dirty) { dirty = false; await update(); }
    } catch (error) {
      status.textContent = `${message("failed", "The model could not run:")} ${error.message}`;
      throw error;
    } finally {
      running = false;
      waiting.splice(0).forEach((resolve) => resolve());
    }
  }

  window.mnistIdle = () => (running ? new Promise((resolve) => waiting.push(resolve)) : Promise.resolve());

  let last = null;

  function point(event) {
    const box = canvas.getBoundingClientRect();
    return [(event.clientX - box.left) * (canvas.width / box.width),
            (event.clientY - box.top) * (canvas.height / box.height)];
  }

  function strokeTo(event) {
    const [x, y] = point(event);
    pen.beginPath();
    pen.moveTo(...last);
    pen.lineTo(x, y);
    pen.stroke();
    last = [x, y];
  }

  canvas.addEventListener("pointerdown", (event) => {
    canvas.setPointerCapture(event.pointerId);
    last = point(event);
    strokeTo(event); // a tap leaves a dot
    requestUpdate();
  });
  canvas.addEventListener("pointermove", (event) => {
    if (last === null) return;
    strokeTo(event);
    requestUpdate();
  });
  for (const type of ["pointerup", "pointercancel"]) {
    canvas.addEventListener(type, () => { last = null; });
  }
  clearButton.addEventListener("click", () => {
    clearCanvas();
    requestUpdate();
  });

  pen.lineWidth = BRUSH;
  pen.lineCap = "round";
  pen.lineJoin = "round";
  pen.strokeStyle = "#000000";
  clearCanvas();
  showNothing();
  loadModel().then(
    () => { status.textContent = message("ready", "Ready: draw a digit in the box."); },
    (error) => {
      status.textContent = `${message("unloaded", "The model could not be loaded:")} ${error.message}`;
      console.error(error);
    },
  );
})();
