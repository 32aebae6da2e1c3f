#!/usr/bin/env python3
"""Tiny datasets for the CLI tests of graft finetune / eval / predict (numpy + zlib only; no PIL):
  OUT/folder/        3 classes x 6 PNGs (40x40 RGB) + one corrupt .png in class_a (skipped unless --strict)
  OUT/clean/         the same 3 classes without the corrupt file
  OUT/empty_class/   class 'a' with 2 PNGs, class 'b' empty
  OUT/one_class/     a single class folder
  OUT/cifar/         CIFAR-10 binaries: data_batch_1..5.bin (6 records each), test_batch.bin (12), batches.meta.txt
  OUT/idx/           Fashion-MNIST-named IDX files: 60 train / 20 test 28x28 images, 3 classes
Each class has its own bright square on noise, so a few steps learn something.  make_tiny_data.py OUT"""
import os
import struct
import sys
import zlib

import numpy as np


def png_bytes(img):
    """img: (H, W, 3) uint8 -> PNG file bytes (8-bit RGB, filter 0 per row)."""
    h, w, _ = img.shape
    raw = b"".join(b"\x00" + img[y].tobytes() for y in range(h))

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))


def pattern(rng, label, size, channels=3):
    img = rng.integers(0, 60, size=(size, size, channels), dtype=np.int64)
    s = size // 3
    r, c = [(0, 0), (s, s), (2 * s, 0)][label % 3]
    img[r:r + s, c:c + s, :] += 170
    return np.clip(img, 0, 255).astype(np.uint8)


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def folder(root, classes, per_class, rng, corrupt=False):
    for k, name in enumerate(classes):
        os.makedirs(os.path.join(root, name), exist_ok=True)
        for i in range(per_class):
            write(os.path.join(root, name, "img%d.png" % i), png_bytes(pattern(rng, k, 40)))
    if corrupt:
        write(os.path.join(root, classes[0], "corrupt.png"), b"\x89PNG\r\n\x1a\n this is not an image")


def main(out):
    rng = np.random.default_rng(5)
    names = ["class_a", "class_b", "class_c"]
    folder(os.path.join(out, "folder"), names, 6, rng, corrupt=True)
    folder(os.path.join(out, "clean"), names, 6, rng)
    folder(os.path.join(out, "empty_class"), ["a"], 2, rng)
    os.makedirs(os.path.join(out, "empty_class", "b"), exist_ok=True)
    folder(os.path.join(out, "one_class"), ["a"], 2, rng)

    def cifar_records(n, offset):
        recs = b""
        for i in range(n):
            label = (i + offset) % 3
            img = pattern(rng, label, 32)  # HWC -> CHW planes as CIFAR stores them
            recs += bytes([label]) + img.transpose(2, 0, 1).tobytes()
        return recs

    for b in range(1, 6):
        write(os.path.join(out, "cifar", "data_batch_%d.bin" % b), cifar_records(6, b))
    write(os.path.join(out, "cifar", "test_batch.bin"), cifar_records(12, 0))
    write(os.path.join(out, "cifar", "batches.meta.txt"),
          b"\n".join(n.encode() for n in ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                                          "ship", "truck"]) + b"\n")

    def idx(prefix, n):
        labels = np.array([i % 3 for i in range(n)], dtype=np.uint8)
        images = np.stack([pattern(rng, int(l), 28, 1)[:, :, 0] for l in labels])
        write(os.path.join(out, "idx", prefix + "-images-idx3-ubyte"), struct.pack(">IIII", 0x803, n, 28, 28) + images.tobytes())
        write(os.path.join(out, "idx", prefix + "-labels-idx1-ubyte"), struct.pack(">II", 0x801, n) + labels.tobytes())

    idx("train", 60)
    idx("t10k", 20)


if __name__ == "__main__":
    main(sys.argv[1])
