/* bincls web: the exported model, run in this page by onnxruntime-web (WebAssembly). No server, no network.
 *
 * window.bincls.classify(fileOrBlob) -> Promise of {class_name, probability, p_class1, ood, ood_score}:
 * the image is decoded as bincls decodes it (EXIF orientation applied, no colour-profile conversion,
 * transparency on white) and its RGB bytes go to the same ONNX graph `bincls export` checked against
 * `bincls predict` (resize, normalization, model, calibration and the out-of-distribution score inside).
 *
 * Needs, loaded before it: runtime/ort.wasm.min.js, runtime/ort-wasm-glue.js, runtime/ort-wasm-binary.js
 * and model.js. Everything is in script files because browsers refuse fetch() of file:// URLs.
 */
(function () {
  "use strict";

  const MODEL = window.BINCLS_MODEL;
  const info = MODEL.info;

  function bytesOf(base64) {
    const text = atob(base64);
    const out = new Uint8Array(text.length);
    for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
    return out;
  }

  let loading = null;
  function session() {
    if (loading === null) {
      const ort = window.ort;
      // One thread and no proxy worker: a page opened from disk is not cross-origin isolated (no threads
      // there anyway), and a worker would have to load its script by URL.
      ort.env.wasm.numThreads = 1;
      ort.env.wasm.proxy = false;
      ort.env.wasm.wasmBinary = bytesOf(window.BINCLS_ORT_WASM);
      const glue = new Blob([window.BINCLS_ORT_GLUE], { type: "text/javascript" });
      ort.env.wasm.wasmPaths = { mjs: URL.createObjectURL(glue) };
      loading = ort.InferenceSession.create(bytesOf(MODEL.onnx), { executionProviders: ["wasm"] });
    }
    return loading;
  }

  // The image as bincls sees it: RGB bytes, row by row, of the upright image composited on white.
  async function decode(blob) {
    try {
      return await createImageBitmap(blob, {
        imageOrientation: "from-image",
        colorSpaceConversion: "none",
        premultiplyAlpha: "none",
      });
    } catch (err) {
      const name = blob && blob.name ? blob.name : "the image";
      throw new Error(`${name} cannot be decoded as an image by this browser (${err.message || err})`);
    }
  }

  function rgbOf(source, width, height) {
    const canvas = document.createElement("canvas");
    canvas.width = width;
    canvas.height = height;
    const ctx = canvas.getContext("2d", { willReadFrequently: true });
    ctx.fillStyle = "#ffffff";
    ctx.fillRect(0, 0, width, height);
    ctx.drawImage(source, 0, 0, width, height);
    const rgba = ctx.getImageData(0, 0, width, height).data;
    const rgb = new Uint8Array(width * height * 3);
    for (let i = 0, j = 0; i < rgba.length; i += 4, j += 3) {
      rgb[j] = rgba[i];
      rgb[j + 1] = rgba[i + 1];
      rgb[j + 2] = rgba[i + 2];
    }
    return { rgb, width, height };
  }

  function answer(p1, oodScore) {
    const label = p1 >= info.threshold ? 1 : 0;
    const ood = info.ood_threshold === null || info.ood_threshold === undefined
      ? null : oodScore > info.ood_threshold;
    return {
      class_name: info.class_names[label],
      probability: label ? p1 : 1 - p1,
      p_class1: p1,
      ood: ood,
      ood_score: oodScore,
    };
  }

  async function classifyPixels(px) {
    const ort = window.ort;
    const s = await session();
    const feeds = {};
    feeds[info.input.name] = new ort.Tensor("uint8", px.rgb, [px.height, px.width, 3]);
    const out = await s.run(feeds);
    return answer(out.probabilities.data[1], out.ood_score.data[0]);
  }

  // {rgb, width, height}: what the model is given for this file.
  async function pixelsOf(blob) {
    const bitmap = await decode(blob);
    try {
      return rgbOf(bitmap, bitmap.width, bitmap.height);
    } finally {
      bitmap.close();
    }
  }

  async function classify(blob) {
    return classifyPixels(await pixelsOf(blob));
  }

  // A video frame (the webcam) or any drawable: what the camera shows, at its own resolution.
  async function classifyFrame(video) {
    const w = video.videoWidth || video.width;
    const h = video.videoHeight || video.height;
    return classifyPixels(rgbOf(video, w, h));
  }

  window.bincls = {
    info: info,
    ready: function () { return session().then(function () { return info; }); },
    classify: classify,
    classifyFrame: classifyFrame,
    classifyPixels: classifyPixels,
    pixelsOf: pixelsOf,
  };
})();
