// The page: loads the bundled MNIST sample, trains the chosen model on WebGPU (or the CPU
// backend) with a live curve, classifies a drawn digit, saves and loads checkpoints. Everything
// numeric happens in shadergrad (pkg/, built by web/build.sh); this file is the page's wiring.
// window.shadergradPage exposes the same actions to the browser tests (tests/webgpu/check_page.py).

import init, { Session, check_kernels } from "./pkg/shadergrad_web.js";

const $ = (id) => document.getElementById(id);
const SAMPLE = "../examples/data/mnist-sample/";
const FILES = ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"];
// Batches of 64: the bundled sample's 10,000 images make 157 steps an epoch (128 would make 79,
// too few for the MLP to pass 90 % in one epoch on SwiftShader's WebGPU).
// The live curve reads the loss every PART batches (?part=N changes it; each read waits for the
// device).
const BATCH = 64, LR = { mlp: 1e-3, lenet: 2e-3, lenet_bn: 2e-3 };
const PART = Number(new URLSearchParams(location.search).get("part")) || 8;

let session = null, files = null, stopRequested = false, busy = false;
const points = []; // {x: epochs, loss, acc}

function status(text) { $("status").textContent = text; }

async function fetchSample() {
  const bytes = await Promise.all(FILES.map(async (f) => {
    const r = await fetch(SAMPLE + f);
    if (!r.ok) throw new Error(`${SAMPLE + f}: ${r.status} ${r.statusText}`);
    return new Uint8Array(await r.arrayBuffer());
  }));
  return bytes;
}

async function openSession(kind) {
  session = await Session.open(kind === "gpu");
  $("device").textContent = `device: ${session.device()}`;
  status(session.load_mnist(...files));
}

async function setup() {
  await init();
  files = await fetchSample();
  if (!navigator.gpu) {
    $("warning").textContent = "This browser has no WebGPU (navigator.gpu is missing): training runs on the CPU backend instead.";
    $("backend").value = "cpu";
    $("backend").querySelector("option[value=gpu]").disabled = true;
  }
  try {
    await openSession($("backend").value);
  } catch (e) {
    $("warning").textContent = `WebGPU did not open (${e.message || e}): using the CPU backend.`;
    $("backend").value = "cpu";
    await openSession("cpu");
  }
  $("backend").onchange = () => guard(() => openSession($("backend").value));
}

// One action at a time: the session's methods are called in turn.
async function guard(action) {
  if (busy) return;
  busy = true;
  try { return await action(); }
  catch (e) { status(`error: ${e.message || e}`); throw e; }
  finally { busy = false; }
}

function drawPlot() {
  const c = $("plot"), g = c.getContext("2d"), w = c.width, h = c.height, pad = 30;
  g.clearRect(0, 0, w, h);
  g.strokeStyle = "#bbb"; g.strokeRect(pad, 5, w - pad - 5, h - pad - 5);
  if (!points.length) return;
  const maxX = Math.max(1, points[points.length - 1].x), maxLoss = Math.max(...points.map((p) => p.loss ?? 0), 0.1);
  const X = (x) => pad + (x / maxX) * (w - pad - 5), Y = (v) => 5 + (1 - v) * (h - pad - 5);
  const line = (key, scale, color) => {
    g.strokeStyle = color; g.lineWidth = 2; g.beginPath();
    points.filter((p) => p[key] != null).forEach((p, i) => { const y = Y(p[key] / scale); i ? g.lineTo(X(p.x), y) : g.moveTo(X(p.x), y); });
    g.stroke();
  };
  line("loss", maxLoss, "#3b6fd8");
  line("acc", 1, "#e07b20");
  g.fillStyle = "#e07b20";
  points.filter((p) => p.acc != null).forEach((p) => { g.beginPath(); g.arc(X(p.x), Y(p.acc), 4, 0, 7); g.fill(); });
  g.fillStyle = "#555"; g.font = "11px sans-serif";
  g.fillText(`loss ≤ ${maxLoss.toFixed(2)}`, pad + 4, 16); g.fillText(`epochs: ${maxX.toFixed(2)}`, w - 90, h - 10);
  const last = points.filter((p) => p.acc != null).pop();
  if (last) g.fillText(`test accuracy ${(100 * last.acc).toFixed(2)} %`, pad + 4, 30);
}

// Trains `epochs` epochs of `model`; resolves to the last epoch's report.
async function train(model, epochs) {
  stopRequested = false;
  $("stop").disabled = false; $("train").disabled = true;
  points.length = 0;
  status(session.start(model, LR[model] ?? 1e-3, BATCH, 0n, epochs));
  const perEpoch = session.batches_per_epoch();
  let report = null, samples = 0, seconds = 0;
  try {
    for (let epoch = 0; epoch < epochs && !stopRequested; epoch++) {
      let done = 0;
      while (!stopRequested) {
        const t0 = performance.now();
        const n = session.train(PART);
        if (n === 0) break;
        const part = await session.progress();   // the device finishes the part before this resolves
        seconds += (performance.now() - t0) / 1000; samples += part.samples; done += n;
        points.push({ x: epoch + done / perEpoch, loss: part.loss, acc: null });
        $("speed").textContent = `${Math.round(samples / seconds)} samples/s (${samples} samples in ${seconds.toFixed(1)} s)`;
        status(`epoch ${epoch + 1}: batch ${done} of ${perEpoch}, loss ${part.loss.toFixed(4)}`);
        drawPlot();
        await new Promise((r) => setTimeout(r, 0)); // let the page draw and take a click
      }
      if (stopRequested) break;
      report = await session.finish_epoch();
      points.push({ x: epoch + 1, loss: null, acc: report.test_accuracy });
      drawPlot();
      status(`epoch ${report.epoch}: train loss ${report.train_loss.toFixed(4)}, test accuracy ${(100 * report.test_accuracy).toFixed(2)} %`);
    }
    if (stopRequested) status(`stopped after ${samples} samples`);
  } finally {
    $("stop").disabled = true; $("train").disabled = false; $("save").disabled = false;
  }
  return { report, samples_per_second: samples / seconds, samples, seconds };
}

// Drawing: white strokes on black, as MNIST digits are; classify preprocesses them as the
// native `classify` example preprocesses a PNG.
const pad = $("pad"), pen = pad.getContext("2d");
function clearPad() { pen.fillStyle = "#000"; pen.fillRect(0, 0, pad.width, pad.height); $("prediction").textContent = ""; $("bars").innerHTML = ""; }
clearPad();
let drawing = false;
const at = (e) => { const r = pad.getBoundingClientRect(); return [(e.clientX - r.left) * pad.width / r.width, (e.clientY - r.top) * pad.height / r.height]; };
pad.addEventListener("pointerdown", (e) => { drawing = true; pad.setPointerCapture(e.pointerId); const [x, y] = at(e); pen.beginPath(); pen.moveTo(x, y); });
pad.addEventListener("pointermove", (e) => {
  if (!drawing) return;
  const [x, y] = at(e);
  pen.strokeStyle = "#fff"; pen.lineWidth = 20; pen.lineCap = "round"; pen.lineJoin = "round";
  pen.lineTo(x, y); pen.stroke();
});
pad.addEventListener("pointerup", () => { drawing = false; guard(classifyPad); });

async function classifyPad() {
  const image = pen.getImageData(0, 0, pad.width, pad.height);
  const p = await session.classify(image.width, image.height, new Uint8Array(image.data.buffer));
  const best = p.indexOf(Math.max(...p));
  $("prediction").textContent = `${best} (${(100 * p[best]).toFixed(1)} %)`;
  $("bars").innerHTML = Array.from(p, (v, d) => `<div class="bar">${d} <span class="fill" style="width:${Math.round(160 * v)}px"></span> ${(100 * v).toFixed(1)} %</div>`).join("");
  return { digit: best, probabilities: Array.from(p) };
}

// Draws test image `index` of the sample into the pad, scaled up (the tests' "drawn" digit).
async function drawTestDigit(index) {
  const raw = new Uint8Array(await new Response(new Blob([files[2]]).stream().pipeThrough(new DecompressionStream("gzip"))).arrayBuffer());
  const labels = new Uint8Array(await new Response(new Blob([files[3]]).stream().pipeThrough(new DecompressionStream("gzip"))).arrayBuffer());
  const small = new ImageData(28, 28);
  for (let i = 0; i < 784; i++) {
    const v = raw[16 + index * 784 + i];
    small.data.set([v, v, v, 255], 4 * i);
  }
  const bitmap = await createImageBitmap(small);
  clearPad();
  pen.imageSmoothingEnabled = true;
  pen.drawImage(bitmap, 0, 0, pad.width, pad.height);
  return labels[8 + index];
}

async function checkpointBytes() { return await session.checkpoint(); }

$("train").onclick = () => guard(() => train($("model").value, Number($("epochs").value)));
$("stop").onclick = () => { stopRequested = true; };
$("clear").onclick = clearPad;
$("save").onclick = () => guard(async () => {
  const bytes = await checkpointBytes();
  const a = document.createElement("a");
  a.href = URL.createObjectURL(new Blob([bytes], { type: "application/octet-stream" }));
  a.download = "shadergrad-web.safetensors";
  a.click();
  status(`saved a checkpoint of ${bytes.length} bytes`);
});
$("load").onchange = () => guard(async () => {
  const file = $("load").files[0];
  if (!file) return;
  const summary = session.load_checkpoint(new Uint8Array(await file.arrayBuffer()), 1e-3, BATCH, Number($("epochs").value));
  $("save").disabled = false;
  status(`loaded ${file.name}:\n${summary}`);
});

// For the browser tests: the page's own actions, awaitable.
window.shadergradPage = {
  ready: setup().then(() => true),
  train: (model, epochs) => guard(() => train(model, epochs)),
  drawTestDigit: (index) => drawTestDigit(index),
  classify: () => guard(classifyPad),
  checkpointBase64: () => guard(async () => { const b = await checkpointBytes(); let s = ""; for (const x of b) s += String.fromCharCode(x); return btoa(s); }),
  checkKernels: () => guard(() => check_kernels()),
  device: () => session.device(),
};
