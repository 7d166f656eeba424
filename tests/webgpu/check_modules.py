#!/usr/bin/env python3
"""Compiles every WGSL module shadergrad created in a run through the browser's WebGPU (Tint).

    SHADERGRAD_WGSL_LOG=/tmp/wgsl cargo test --release      # the crate records what it compiles
    python3 tests/webgpu/check_modules.py /tmp/wgsl           # Chromium compiles the same

The log folder holds each module's text as a browser is handed it and `pipelines.jsonl`, one
line per (module, entry point, override constants) the crate compiled (see src/gpu/wgsl_log.rs).
This script serves them with compile_modules.html on 127.0.0.1, opens the page in headless
Chromium with WebGPU on SwiftShader, and reads back one report: every module's
getCompilationInfo messages and validation errors, every pipeline made with its entry point and
constants. It fails (exit 1) on any error or warning, on a module the crate defines that the log
lacks, or when no report arrives. A pipeline is skipped only by rule, and the rule is printed:
the adapter lacks a feature the module needs, or the entry point binds more storage buffers than
the adapter allows. Entry points that need limits beyond WebGPU's defaults are listed.
"""
import argparse
import http.server
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import tempfile
import threading

HERE = pathlib.Path(__file__).resolve().parent
REPO = HERE.parent.parent
# WebGPU's default limits that a pipeline's bindings count against.
DEFAULT_STORAGE_BUFFERS = 8
DEFAULT_UNIFORM_BUFFERS = 12
CHROMIUM_FLAGS = [
    "--headless=new", "--no-sandbox", "--enable-unsafe-webgpu", "--enable-features=Vulkan",
    "--use-vulkan=swiftshader", "--use-webgpu-adapter=swiftshader", "--enable-logging=stderr",
    "--no-first-run", "--disable-background-networking", "--disable-component-update",
    "--disable-sync", "--disable-quic", "--disable-default-apps",
]


def load_log(log_dir):
    """The modules of the log, each with its distinct pipelines."""
    lines = (log_dir / "pipelines.jsonl").read_text().splitlines()
    modules = {}
    for line in lines:
        p = json.loads(line)
        mod = modules.setdefault(p["file"], {"file": p["file"], "module": p["module"],
                                             "features": p["features"], "pipelines": {}})
        key = (p["entry"], tuple(sorted(p["constants"].items())))
        mod["pipelines"][key] = {k: p[k] for k in ("entry", "constants", "storage_buffers", "uniform_buffers", "slots")}
    for mod in modules.values():
        mod["pipelines"] = sorted(mod["pipelines"].values(), key=lambda p: (p["entry"], sorted(p["constants"].items())))
    return sorted(modules.values(), key=lambda m: m["file"])


def crate_modules():
    """Every module the crate can create: each static `Shader`'s file name in src/gpu, and each
    paired matmul module (`pair_shader!("matmul_pair.wgsl", …)` in gpu/matmul.rs)."""
    names = set()
    for rs in (REPO / "src" / "gpu").glob("*.rs"):
        text = rs.read_text()
        names.update(re.findall(r'static \w+: Shader = Shader \{\s*name: "([\w.]+)"', text))
        names.update(re.findall(r'pair_shader!\("([\w.]+)"', text))
    return names


class Handler(http.server.BaseHTTPRequestHandler):
    log_dir = None
    manifest = None
    report = None
    done = threading.Event()

    def log_message(self, *args):
        pass

    def send(self, body, kind):
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path in ("/", "/index.html"):
            self.send((HERE / "compile_modules.html").read_bytes(), "text/html")
        elif self.path == "/manifest.json":
            self.send(json.dumps(self.manifest).encode(), "application/json")
        elif self.path.startswith("/modules/"):
            name = pathlib.Path(self.path[len("/modules/"):]).name
            path = self.log_dir / name
            if path.is_file() and name.endswith(".wgsl"):
                self.send(path.read_bytes(), "text/plain")
            else:
                self.send_error(404)
        else:
            self.send_error(404)

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        Handler.report = json.loads(body)
        self.send(b"ok", "text/plain")
        Handler.done.set()


def run_browser(chromium, url, timeout, stderr_path):
    profile = tempfile.mkdtemp(prefix="shadergrad-chromium-")
    try:
        with open(stderr_path, "wb") as err:
            # TMPDIR: Chromium's singleton socket goes in the profile too, removed with it.
            proc = subprocess.Popen([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", url],
                                    stdout=subprocess.DEVNULL, stderr=err, env={**os.environ, "TMPDIR": profile})
            try:
                arrived = Handler.done.wait(timeout)
            finally:
                proc.kill()
                proc.wait()
        return arrived
    finally:
        shutil.rmtree(profile, ignore_errors=True)


def main():
    cli = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    cli.add_argument("log_dir", type=pathlib.Path, help="the SHADERGRAD_WGSL_LOG folder of a test run")
    cli.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    cli.add_argument("--timeout", type=float, default=600, help="seconds to wait for the page's report")
    cli.add_argument("--report", type=pathlib.Path, help="also write the page's report (JSON) here")
    args = cli.parse_args()
    if not (args.log_dir / "pipelines.jsonl").is_file():
        sys.exit(f"error: {args.log_dir}/pipelines.jsonl is missing: run the tests with SHADERGRAD_WGSL_LOG={args.log_dir}")
    if not os.access(args.chromium, os.X_OK):
        sys.exit(f"error: no Chromium at {args.chromium} (apt-get install chromium)")

    modules = load_log(args.log_dir)
    Handler.log_dir = args.log_dir
    Handler.manifest = {"modules": modules}
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/"
    stderr_path = args.log_dir / "chromium-stderr.txt"
    arrived = run_browser(args.chromium, url, args.timeout, stderr_path)
    server.shutdown()
    if not arrived:
        sys.exit(f"error: no report from the page within {args.timeout:.0f} s; Chromium's log: {stderr_path}")
    report = Handler.report
    if args.report:
        args.report.write_text(json.dumps(report, indent=1))
    if report.get("fatal"):
        sys.exit(f"error: the page failed: {report['fatal']}")

    a = report["adapter"]
    print(f"WebGPU adapter: {a.get('vendor')} {a.get('architecture')} {a.get('description') or ''}".rstrip())
    print(f"  features: {', '.join(a['features'])}; subgroups of {a.get('subgroupMinSize')} to {a.get('subgroupMaxSize')} lanes")
    print(f"  limits requested: {json.dumps(report['device_limits'])}")
    failures, warnings = [], []
    for m in report["modules"]:
        for msg in m["messages"]:
            where = f"{m['file']}:{msg['line']}:{msg['column']}"
            text = f"{where}: {msg['type']}: {msg['text']}"
            if msg["type"] == "error":
                failures.append(text)
            elif msg["type"] == "warning":
                warnings.append(text)
            else:
                print(f"note: {text}")
        failures += [f"{m['file']}: {e}" for e in m["errors"]]
    passed = skipped = 0
    print("\npipelines (module: entry point {constants}):")
    for p in report["pipelines"]:
        name = f"{p['file']}: {p['entry']} {json.dumps(p['constants'], sort_keys=True)}"
        if p.get("skipped"):
            skipped += 1
            print(f"  skipped  {name}: {p['skipped']}")
        elif p.get("error"):
            failures.append(f"{name}: {p['error']}")
            print(f"  FAILED   {name}")
        else:
            passed += 1
            print(f"  ok       {name}")
    beyond = sorted({(p["file"], p["entry"], p["storage_buffers"]) for p in report["pipelines"]
                     if p["storage_buffers"] > DEFAULT_STORAGE_BUFFERS or p["uniform_buffers"] > DEFAULT_UNIFORM_BUFFERS})
    print(f"\nentry points beyond WebGPU's default maxStorageBuffersPerShaderStage ({DEFAULT_STORAGE_BUFFERS}):")
    for file, entry, n in beyond:
        print(f"  {file}: {entry} binds {n} storage buffers")
    missing = sorted(crate_modules() - {m["file"] for m in modules})
    if missing:
        failures.append(f"modules the crate defines but the run never compiled: {', '.join(missing)}")
    print(f"\n{len(report['modules'])} modules, {len(report['pipelines'])} pipelines")
    for line in warnings:
        print(f"warning: {line}")
    for line in failures:
        print(f"error: {line}")
    print(f"webgpu: {passed} passed, {len(failures) + len(warnings)} failed, {skipped} skipped")
    sys.exit(1 if failures or warnings else 0)


if __name__ == "__main__":
    main()
