#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (small valid files, one directory per target) and
the config target's dictionary (the schema's keys and choices, read from configs/README.md).

    python3 tests/fuzz/make_seeds.py        # rewrites tests/fuzz/corpus/<target>/, fuzz_config.dict

Standard library only; the output is deterministic (gzip mtime 0), so re-running it changes
no committed byte unless configs/ changed. Not here: the inputs libFuzzer grows during a run
(build-fuzz/corpus/).
"""
import gzip
import json
import os
import re
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SET_MARKER = b"\n#@set\n"  # fuzz_config.cpp: `--set` override lines follow it

# safetensors dtype name -> (struct format char, element size)
ST_DTYPES = {"F32": ("f", 4), "I32": ("i", 4), "I64": ("q", 8), "U8": ("B", 1)}


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def gz(data):
    return gzip.compress(data, compresslevel=9, mtime=0)


def safetensors(tensors, metadata=None):
    """tensors: list of (name, dtype, shape, values); laid out in the order given."""
    header, blobs, offset = {}, [], 0
    for name, dtype, shape, values in tensors:
        fmt, size = ST_DTYPES[dtype]
        blob = struct.pack("<%d%s" % (len(values), fmt), *values)
        n = 1
        for s in shape:
            n *= s
        assert len(blob) == n * size, name
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    if metadata:
        header["__metadata__"] = metadata
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the reference writer pads the header to 8 bytes
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def idx(magic, dims, payload):
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + payload


def read(*parts):
    with open(os.path.join(REPO, *parts), "rb") as f:
        return f.read()


def config_seeds():
    for name in sorted(os.listdir(os.path.join(REPO, "configs"))):
        if name.endswith(".yaml"):
            write("fuzz_config", name, read("configs", name))
    write("fuzz_config", "minimal.yaml",
          b"model:\n  arch: mlp\ndata:\n  dataset: synthetic\n"
          b"optim:\n  name: sgd\n  lr: 0.1\n  epochs: 1\n")
    write("fuzz_config", "quickstart_with_set.yaml", read("configs", "quickstart.yaml") + SET_MARKER +
          b"optim.lr=3e-4\nmodel.depth=2\ndata.transforms.normalize.mean=[0.5]\n"
          b"data.transforms={hflip: true, random_crop_padding: 4}\nrun.seed=1,2,3\n")
    write("fuzz_config", "flow_style.yaml",
          b"{run: {name: flow, seed: 7, device: cpu}, model: {arch: resnet20, widths: [16, 32, 64]},"
          b" data: {dataset: cifar10, batch_size: 64}, optim: {name: adamw, lr: !!float 1e-3,"
          b" betas: [0.9, 0.95], epochs: 2, warmup_steps: 10}}\n")
    for name in ("invalid_yaml.yaml", "unknown_key.yaml", "wrong_type.yaml"):
        write("fuzz_config", name, read("tests", "configs", name))


def config_dict():
    """Every key and choice of the reference config, plus YAML syntax, as a libFuzzer dict."""
    text = read("configs", "README.md").decode()
    block = text[text.index("```yaml") + len("```yaml"):]
    block = block[:block.index("```")]
    tokens = set()
    for line in block.splitlines():
        m = re.match(r"\s*([a-z_0-9]+):", line)
        if m:
            tokens.add(m.group(1) + ":")
        comment = line.split("#", 1)[1] if "#" in line else ""
        choices = comment.split(".")[0]
        if "|" in choices:
            words = [c.split()[-1] for c in choices.split("|") if c.split()]
            tokens.update(w for w in words if re.fullmatch(r"[a-z_0-9]+", w))
    tokens.update(["base:", "#@set\n", "=", "[", "]", "{", "}", ", ", ": ", "- ", "\n  ", "~",
                   "null", "true", "no", "&a ", "*a", "<<: ", "!!str ", "!!float ", "---\n",
                   "...\n", "'", "\"", "|\n", ">\n", "1e-5", ".inf", "-.inf", ".nan", "-1",
                   "0x10", "9223372036854775807", "18446744073709551616", "1e400"])
    lines = ["# libFuzzer/AFL dictionary for fuzz_config, written by make_seeds.py from the",
             "# reference config in configs/README.md; do not edit."]
    for i, tok in enumerate(sorted(tokens)):
        esc = tok.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\x0a")
        lines.append('t%d="%s"' % (i, esc))
    with open(os.path.join(HERE, "fuzz_config.dict"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    write("fuzz_safetensors", "all_dtypes.safetensors", safetensors(
        [("w", "F32", [2, 3], [0.5, -1.0, 2.0, 1e-3, 3.25, -0.0]),
         ("idx32", "I32", [3], [1, -2, 2147483647]),
         ("idx64", "I64", [2, 1], [-(2**63), 2**40]),
         ("mask", "U8", [4], [0, 1, 254, 255])],
        {"format": "pt", "note": "qilin fuzz seed"}))
    write("fuzz_safetensors", "scalar_and_empty.safetensors", safetensors(
        [("scalar", "F32", [], [1.5]),
         ("empty", "I64", [0, 3], []),
         ("bias", "F32", [2], [0.25, 0.75])]))
    write("fuzz_safetensors", "no_tensors.safetensors", safetensors([], {"k": "v"}))

    images = bytes(range(2 * 3 * 4))
    images_file = idx(0x00000803, [2, 3, 4], images)
    labels_file = idx(0x00000801, [5], bytes([0, 1, 9, 3, 255]))
    write("fuzz_idx", "images-idx3-ubyte", images_file)
    write("fuzz_idx", "images-idx3-ubyte.gz", gz(images_file))
    write("fuzz_idx", "labels-idx1-ubyte", labels_file)
    write("fuzz_idx", "labels-idx1-ubyte.gz", gz(labels_file))
    write("fuzz_idx", "empty-images-idx3-ubyte", idx(0x00000803, [0, 28, 28], b""))

    record = lambda label, fill: bytes([label]) + bytes((fill + i) % 256 for i in range(3072))
    write("fuzz_cifar", "two_records.bin", record(3, 0) + record(9, 7))
    write("fuzz_cifar", "bad_label.bin", record(0, 1) + record(10, 2))
    write("fuzz_cifar", "truncated.bin", record(1, 5)[:1000])

    # fuzz_packed: byte 0 picks the model (0-5), then edits as fuzz_packed.cpp reads them
    # (op % 6: 0 overwrite bytes, 1 replace a tensor, 2 drop, 3 rename, 4 set metadata, 5 drop
    # metadata). The export itself is built by the target.
    for v in range(6):
        write("fuzz_packed", f"variant-{v}", bytes([v]))
    write("fuzz_packed", "int8-overwrite", bytes([3, 0, 5, 0x10, 0x00, 2, 0x80, 0x7F]))
    write("fuzz_packed", "auto-metadata", bytes([1, 4, 2, 9]) + b"qfp8 e3m4")
    write("fuzz_packed", "fp8-drop", bytes([4, 2, 3]))
    write("fuzz_packed", "e5m2-replace", bytes([5, 1, 4, 0, 2, 1, 3]) + bytes(range(16)))

    config_seeds()
    config_dict()


if __name__ == "__main__":
    main()
