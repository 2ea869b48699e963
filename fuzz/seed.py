"""Writes the fuzzers' seed corpora from the test fixtures.

    python3 fuzz/seed.py            # -> fuzz/corpus/decode, fuzz/corpus/request, fuzz/corpus/dicom

decode: every fixture X-ray, every hostile fixture file, and small JPEG/PNG files cut from
them (libFuzzer mutates small inputs far faster). request: one selector byte (Content-Type in
bits 0-2, route in bits 3-5, binary body in bit 7; see fuzz_targets/request.rs) then a body, for JSON
base64, raw image, S3 reference and malformed bodies. Regression inputs for fixed crashes
live in fuzz/regressions/<target>/ and are copied in too. dicom: the DICOM test files.
"""
import base64
import glob
import json
import os
import shutil

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIX = os.path.join(ROOT, "tests", "fixtures")
OUT = os.path.join(ROOT, "fuzz", "corpus")


def write(target, name, data):
    d = os.path.join(OUT, target)
    os.makedirs(d, exist_ok=True)
    open(os.path.join(d, name), "wb").write(data)


def main():
    images = sorted(glob.glob(os.path.join(FIX, "xrays", "*", "*")))[:6]
    hostile = sorted(f for f in glob.glob(os.path.join(FIX, "hostile", "*")) if not f.endswith(".md"))
    for f in images + hostile:
        data = open(f, "rb").read()
        write("decode", os.path.basename(f), data)
    for f in sorted(glob.glob(os.path.join(FIX, "dicom", "*.dcm"))):
        write("dicom", os.path.basename(f), open(f, "rb").read())
    smallest = min(images, key=os.path.getsize)
    small = open(smallest, "rb").read()
    b64 = base64.b64encode(small).decode()
    requests = {
        "json-base64": b"\x00" + json.dumps({"image": b64}).encode(),
        "json-data-url": b"\x01" + json.dumps({"image": "data:image/jpeg;base64," + b64}).encode(),
        "raw-jpeg": b"\x82" + small,
        "octet-stream": b"\x84" + small,
        "s3-ref": b"\x00" + json.dumps({"s3": {"bucket": "b", "key": "k.jpg"}}).encode(),
        "both-sources": b"\x00" + json.dumps({"image": "AAAA", "s3": {"bucket": "b", "key": "k"}}).encode(),
        "malformed": b"\x00{\"image\": ",
        "nested": b"\x00" + b"[" * 200 + b"]" * 200,
        "health": b"\x18",
        "wrong-method": b"\x20",
    }
    for name, data in requests.items():
        write("request", name, data)
    for target in ("decode", "request", "dicom"):
        for f in glob.glob(os.path.join(ROOT, "fuzz", "regressions", target, "*")):
            shutil.copy(f, os.path.join(OUT, target))
    for target in ("decode", "request", "dicom"):
        print(target, len(os.listdir(os.path.join(OUT, target))), "seeds")


if __name__ == "__main__":
    main()
