"""The Python peer as a server: what a user would deploy instead of covid-xray, for bench/cost.py.

    PORT=8081 [PEER_DRAFT=0] python bench/peer.py [ONNX]

The same per-request pipeline as bench/bench.py's Python baseline (JSON + base64 + Pillow
decode with `draft()`, gray, resize, equalise when the model's card says so + onnxruntime on
one thread), behind the standard library's HTTP server: GET /health and POST /predict.
`draft()` (libjpeg-turbo's DCT-scaled decode) makes it the strongest peer; PEER_DRAFT=0
decodes every pixel instead, as a plain Pillow handler does. Start-up does what a Python Lambda's init does:
start the interpreter, import numpy, Pillow and onnxruntime, load the model.
"""
import http.server
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench import ROOT, ort_session, python_pipeline  # noqa: E402


def main():
    port = int(os.environ.get("PORT", "8081"))
    onnx = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "model", "xray.onnx")
    card = json.load(open(os.path.join(ROOT, "model", "model.json")))["input"]
    draft = os.environ.get("PEER_DRAFT", "1") != "0"
    equalise = "equalize" in card["preprocess"]
    run = python_pipeline(ort_session(onnx), card["size"], 0.5, 0.2887, draft=draft, equalise=equalise)

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def answer(self, status, body):
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self.answer(200 if self.path == "/health" else 404, "{}")

        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.answer(200, run(body))

    http.server.HTTPServer(("127.0.0.1", port), Handler).serve_forever()


if __name__ == "__main__":
    main()
