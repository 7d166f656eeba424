#!/usr/bin/env python3
"""The page (web/) in a real browser: headless Chromium with WebGPU on SwiftShader, driven through
chromedriver (the W3C WebDriver protocol, spoken here with urllib: nothing to install).

It serves the repository on 127.0.0.1, opens web/, and, as a person would:
  1. picks the MLP and clicks Train (1 epoch on the bundled sample): test accuracy must be ≥ 90 %;
  2. draws test digits into the canvas and classifies them: the first must be right;
  3. saves the checkpoint, which the native `classify` example must load and get the same digit;
  4. loads a checkpoint the native trainer wrote through the page's file input, and classifies;
  5. runs the kernel-vs-CPU-twin checks (every shader module, in wasm, on the page's WebGPU);
  6. with --screenshot FILE, saves the page as it looks after training.
Prints the browser's samples/s. Usage (after web/build.sh and `cargo build --release --examples`):
    python3 tests/webgpu/check_page.py [--screenshot docs/web-page.png] [--json FILE]
"""

import argparse
import base64
import functools
import http.server
import json
import os
import pathlib
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zlib

REPO = pathlib.Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = [
    "--headless=new", "--no-sandbox", "--enable-unsafe-webgpu", "--enable-features=Vulkan",
    "--use-vulkan=swiftshader", "--use-webgpu-adapter=swiftshader", "--window-size=1100,1000",
]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class WebDriver:
    """Just enough of WebDriver: a session, navigation, scripts, clicks, file inputs, screenshots."""

    def __init__(self, port, args=CHROMIUM_ARGS):
        self.base = f"http://127.0.0.1:{port}"
        caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome", "goog:chromeOptions": {
            "binary": "/usr/bin/chromium", "args": args}}}}
        self.sid = self.call("POST", "/session", caps)["sessionId"]
        self.call("POST", f"/session/{self.sid}/timeouts", {"script": 900_000, "pageLoad": 120_000})

    def call(self, method, path, body=None):
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.base + path, data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=960) as r:
                return json.loads(r.read())["value"]
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"webdriver {method} {path}: {e.read().decode()[:600]}") from None

    def go(self, url):
        self.call("POST", f"/session/{self.sid}/url", {"url": url})

    def run(self, body):
        """Runs `body` (an async function body) in the page and returns its value."""
        script = ("const done = arguments[arguments.length - 1];"
                  f"(async () => {{ {body} }})().then(v => done({{ok: v}}), e => done({{error: String(e && e.stack || e)}}));")
        out = self.call("POST", f"/session/{self.sid}/execute/async", {"script": script, "args": []})
        if "error" in out:
            raise RuntimeError(f"in the page: {out['error']}")
        return out["ok"]

    def element(self, css):
        found = self.call("POST", f"/session/{self.sid}/element", {"using": "css selector", "value": css})
        return next(iter(found.values()))

    def click(self, css):
        self.call("POST", f"/session/{self.sid}/element/{self.element(css)}/click", {})

    def send_file(self, css, path):
        self.call("POST", f"/session/{self.sid}/element/{self.element(css)}/value", {"text": str(path)})

    def screenshot(self, path):
        png = self.call("GET", f"/session/{self.sid}/screenshot")
        pathlib.Path(path).write_bytes(base64.b64decode(png))

    def quit(self):
        try:
            self.call("DELETE", f"/session/{self.sid}")
        except Exception:
            pass


def png_gray(pixels, side, path):
    """A grayscale PNG of `side`×`side` bytes (for the native classify)."""
    rows = b"".join(b"\0" + bytes(pixels[r * side:(r + 1) * side]) for r in range(side))
    chunk = lambda kind, data: struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    pathlib.Path(path).write_bytes(png)


def test_digit(index):
    import gzip
    sample = REPO / "examples/data/mnist-sample"
    images = gzip.decompress((sample / "t10k-images-idx3-ubyte.gz").read_bytes())
    labels = gzip.decompress((sample / "t10k-labels-idx1-ubyte.gz").read_bytes())
    return images[16 + index * 784:16 + (index + 1) * 784], labels[8 + index]


def native(example, *args):
    binary = REPO / "target/release/examples" / example
    if not binary.exists():
        sys.exit(f"error: {binary} is missing: run cargo build --release --examples first")
    out = subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True, timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"{example} failed: {out.stderr.strip()[-800:]}")
    return out.stdout


def train_by_clicking(page):
    """Picks the MLP, clicks Train (1 epoch) and waits for the epoch's report; returns the test
    accuracy, the status line and the speed line."""
    page.click("#model option[value=mlp]")
    started = time.time()
    page.click("#train")
    status = ""
    while time.time() - started < 900:
        status = page.run("return document.getElementById('status').textContent;")
        if "test accuracy" in status or status.startswith("error"):
            break
        time.sleep(1)
    speed = page.run("return document.getElementById('speed').textContent;")
    match = re.search(r"test accuracy ([\d.]+) %", status)
    return (float(match.group(1)) if match else 0.0), status, speed


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--screenshot", help="save the page after training here (PNG)")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--part", type=int, default=8, help="batches between the live curve's loss reads")
    args = parser.parse_args()
    if not (REPO / "web/pkg/shadergrad_web_bg.wasm").exists():
        sys.exit("error: web/pkg is missing: run web/build.sh first")

    port = free_port()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), functools.partial(Quiet, directory=str(REPO)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    driver_port = free_port()
    failures, results = [], {}
    work = pathlib.Path(tempfile.mkdtemp(prefix="shadergrad-page-"))
    # Chromium's profiles and singleton sockets go in `work` too, so a run leaves nothing behind.
    chromedriver = subprocess.Popen(["chromedriver", f"--port={driver_port}"], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL, env={**os.environ, "TMPDIR": str(work)})
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{driver_port}/status", timeout=1)
                break
            except Exception:
                time.sleep(0.1)
        page = WebDriver(driver_port)
        page.go(f"http://127.0.0.1:{port}/web/?part={args.part}")
        page.run("while (!window.shadergradPage) await new Promise(r => setTimeout(r, 50)); return await window.shadergradPage.ready;")
        device = page.run("return window.shadergradPage.device();")
        results["device"] = device
        print(f"page device: {device}")
        if "WebGPU" not in device and "BrowserWebGpu" not in device:
            failures.append(f"the page did not train on WebGPU: {device}")

        # 1. Train the MLP for one epoch by clicking, as a person would.
        accuracy, status, speed = train_by_clicking(page)
        print(f"page after training: {status} | {speed}")
        results.update(accuracy=accuracy, status=status, speed=speed)
        m = re.match(r"(\d+) samples/s", speed)
        results["samples_per_second"] = int(m.group(1)) if m else None
        if accuracy < 90.0:
            failures.append(f"1 epoch of the MLP reached {accuracy} % test accuracy (want ≥ 90 %): {status}")

        # 2. Draw test digits into the canvas and classify them.
        classified = []
        for index in range(5):
            label = page.run(f"return await window.shadergradPage.drawTestDigit({index});")
            got = page.run("return await window.shadergradPage.classify();")
            classified.append((index, label, got["digit"]))
        results["classified"] = classified
        print(f"drawn test digits (index, label, classified): {classified}")
        if classified[0][1] != classified[0][2]:
            failures.append(f"test digit 0 ({classified[0][1]}) was classified as {classified[0][2]}")
        if args.screenshot:
            page.screenshot(args.screenshot)
            print(f"wrote {args.screenshot}")

        # 3. The page's checkpoint in the native classify.
        checkpoint = work / "web.safetensors"
        checkpoint.write_bytes(base64.b64decode(page.run("return await window.shadergradPage.checkpointBase64();")))
        pixels, label = test_digit(0)
        png_gray(pixels, 28, work / "digit.png")
        line = native("classify", "--backend", "cpu", "--checkpoint", checkpoint, work / "digit.png")
        print(f"native classify of the page's checkpoint: {line.strip()}")
        got = re.search(r": (\d+) \(", line)
        if not got or int(got.group(1)) != label:
            failures.append(f"native classify of the page's checkpoint said {line.strip()!r}, the digit is {label}")

        # 4. A checkpoint the native trainer wrote, loaded through the page's file input.
        native("mnist", "--backend", "cpu", "--epochs", "1", "--data", REPO / "examples/data/mnist-sample",
               "--out", work / "native", "--seed", "0")
        native_ckpt = work / "native/checkpoint.safetensors"
        page.send_file("#load", native_ckpt)
        page.run("while (!/loaded/.test(document.getElementById('status').textContent)) await new Promise(r => setTimeout(r, 50));")
        page.run("await window.shadergradPage.drawTestDigit(0);")
        got = page.run("return await window.shadergradPage.classify();")["digit"]
        results["native_checkpoint_digit"] = got
        print(f"the native trainer's checkpoint, loaded in the page, classifies digit 0 ({label}) as {got}")
        if got != label:
            failures.append(f"the native checkpoint loaded in the page classified test digit 0 ({label}) as {got}")

        # Bad input as a person gives it: a damaged checkpoint, a blank canvas. Each is refused
        # with a message naming the problem, and the page keeps working.
        damaged = work / "damaged.safetensors"
        damaged.write_bytes(native_ckpt.read_bytes()[:5000])
        page.send_file("#load", damaged)
        page.run("while (!/error/.test(document.getElementById('status').textContent)) await new Promise(r => setTimeout(r, 50));")
        refused = page.run("return document.getElementById('status').textContent;")
        print(f"a damaged checkpoint: {refused}")
        if "truncated" not in refused and "not a safetensors" not in refused:
            failures.append(f"a damaged checkpoint was not refused with a reason: {refused!r}")
        blank = page.run("document.getElementById('clear').click(); "
                         "try { await window.shadergradPage.classify(); return 'classified'; } "
                         "catch (e) { return String(e.message || e); }")
        print(f"a blank canvas: {blank}")
        if "blank" not in blank:
            failures.append(f"a blank canvas was not refused as blank: {blank!r}")

        # 5. Every shader module against its CPU twin, in the browser.
        report = page.run("return await window.shadergradPage.checkKernels();")
        results["kernels"] = report
        for check in report["checks"]:
            print(f"  {'ok  ' if check['ok'] else 'FAIL'} {check['name']}: loss drift {check['loss_drift']:.2e}, "
                  f"tensor drift {check['param_drift']:.2e}, matmul kernels {', '.join(check['matmul_kernels'])}")
            if not check["ok"]:
                failures.append(f"kernel check {check['name']}: {check}")

        # 6. The CPU backend in WebAssembly, chosen in the page.
        page.click("#backend option[value=cpu]")
        page.run("while (!/CPU/.test(document.getElementById('device').textContent)) await new Promise(r => setTimeout(r, 50));")
        accuracy, status, speed = train_by_clicking(page)
        print(f"page on its CPU backend: {status} | {speed}")
        results["cpu"] = {"accuracy": accuracy, "speed": speed}
        if accuracy < 90.0:
            failures.append(f"the page's CPU backend reached {accuracy} % after 1 epoch: {status}")
        page.quit()

        # 7. A browser without WebGPU: the page says so and offers the CPU backend.
        plain = WebDriver(driver_port, ["--headless=new", "--no-sandbox", "--disable-features=WebGPU"])
        plain.go(f"http://127.0.0.1:{port}/web/")
        plain.run("while (!window.shadergradPage) await new Promise(r => setTimeout(r, 50)); return await window.shadergradPage.ready;")
        warning = plain.run("return document.getElementById('warning').textContent;")
        device = plain.run("return window.shadergradPage.device();")
        print(f"without WebGPU: {warning!r}; {device}")
        if "CPU" not in device or "WebGPU" not in warning:
            failures.append(f"without WebGPU the page said {warning!r} and runs on {device!r}")
        plain.quit()
    finally:
        chromedriver.terminate()
        server.shutdown()
    if args.json:
        pathlib.Path(args.json).write_text(json.dumps(results, indent=2))
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        print(f"(the checkpoints and images it used are kept in {work})")
        sys.exit(1)
    shutil.rmtree(work, ignore_errors=True)
    print("page: every check passed")


if __name__ == "__main__":
    main()
