#!/usr/bin/python3
"""safetensors interop check for tests/test_safetensors.cpp, with plain struct/json/numpy (the
`safetensors` module need not be installed).

  safetensors_interop.py read FILE    parse FILE the way the reference reader does, check the
                                      format invariants, print its contents as JSON:
                                      {"tensors": {name: {"dtype", "shape", "values"}},
                                       "metadata": {...}}; exit 1 with a message on a violation
  safetensors_interop.py write FILE   write FILE the way the reference writer
                                      (safetensors.numpy.save_file) lays it out, and print
                                      what it wrote in the same JSON form
"""
import json
import struct
import sys

import numpy as np

DTYPES = {"F32": "<f4", "I32": "<i4", "I64": "<i8", "U8": "u1"}


def fail(msg):
    print(f"safetensors_interop: {msg}", file=sys.stderr)
    sys.exit(1)


def describe(tensors, metadata):
    return {
        "tensors": {
            name: {"dtype": dt, "shape": list(arr.shape), "values": arr.reshape(-1).tolist()}
            for name, (dt, arr) in tensors.items()
        },
        "metadata": metadata,
    }


def read(path):
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        fail("file shorter than 8 bytes")
    (n,) = struct.unpack("<Q", blob[:8])
    if n % 8 != 0:
        fail(f"header length {n} is not a multiple of 8 (the reference writer pads it)")
    if 8 + n > len(blob):
        fail("header runs past the end of the file")
    header_text = blob[8 : 8 + n].decode("utf-8")
    if header_text.rstrip(" ") != header_text.rstrip():
        fail("header padding is not spaces")
    header = json.loads(header_text)
    data = blob[8 + n :]
    metadata = header.pop("__metadata__", {})
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items()):
        fail("__metadata__ must map strings to strings")
    tensors = {}
    end_prev = 0
    for name, info in sorted(header.items(), key=lambda kv: tuple(kv[1]["data_offsets"])):
        begin, end = info["data_offsets"]
        if begin != end_prev:
            fail(f"{name}: offsets not contiguous ({begin} after {end_prev})")
        dt = info["dtype"]
        if dt not in DTYPES:
            fail(f"{name}: unexpected dtype {dt}")
        shape = info["shape"]
        count = int(np.prod(shape, dtype=np.int64)) if shape else 1
        if end - begin != count * np.dtype(DTYPES[dt]).itemsize:
            fail(f"{name}: {end - begin} bytes for {dt}{shape}")
        tensors[name] = (dt, np.frombuffer(data[begin:end], dtype=DTYPES[dt]).reshape(shape))
        end_prev = end
    if end_prev != len(data):
        fail(f"tensors cover {end_prev} of {len(data)} data bytes")
    return describe(tensors, metadata)


def write(path):
    tensors = {
        "py.f32": ("F32", np.array([[1.5, -2.25, 3.0e-8], [np.pi, -0.0, 65504.0]], dtype="<f4")),
        "py.i32": ("I32", np.array([-2147483648, 0, 2147483647], dtype="<i4")),
        "py.i64": ("I64", np.array([[-(2**62)], [2**53 + 1]], dtype="<i8")),
        "py.u8": ("U8", np.arange(250, 256, dtype="u1").reshape(2, 1, 3)),
        "py.scalar": ("F32", np.array(0.125, dtype="<f4")),
        "py.empty": ("I64", np.zeros((3, 0), dtype="<i8")),
    }
    metadata = {"format": "np", "written_by": "python"}
    # The reference writer: tensors ordered by dtype alignment (largest first), then name;
    # compact JSON with __metadata__ first; header padded with spaces to 8 bytes.
    order = sorted(tensors, key=lambda k: (-np.dtype(DTYPES[tensors[k][0]]).itemsize, k))
    header = {"__metadata__": metadata}
    offset = 0
    for name in order:
        dt, arr = tensors[name]
        nbytes = arr.nbytes
        header[name] = {"dtype": dt, "shape": list(arr.shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for name in order:
            f.write(tensors[name][1].tobytes())
    return describe(tensors, metadata)


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("read", "write"):
        fail(__doc__)
    result = read(sys.argv[2]) if sys.argv[1] == "read" else write(sys.argv[2])
    json.dump(result, sys.stdout)
