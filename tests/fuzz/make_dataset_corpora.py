#!/usr/bin/env python3
"""Writes the seed corpora of the dataset fuzz targets (each < 20 KB): tests/fuzz/idx_corpus (fuzz_idx: 2 bytes
little-endian cut offset + IDX image file + IDX label file), cifar_corpus (fuzz_cifar: flags byte, 2 bytes names
length, names text, CIFAR records) and image_corpus (fuzz_image: JPEG and PNG files of every colour type stb_image
decodes, plus broken ones). Valid seeds and one seed per refusal path; run once, the files are committed.
    /usr/bin/python3 tests/fuzz/make_dataset_corpora.py tests/fuzz
"""
import gzip
import io
import os
import struct
import sys

from PIL import Image


def idx_images(n, rows, cols, pixels=None):
    data = bytes(pixels) if pixels is not None else bytes((i * 7) & 255 for i in range(n * rows * cols))
    return struct.pack(">IIII", 0x803, n, rows, cols) + data


def idx_labels(labels):
    return struct.pack(">II", 0x801, len(labels)) + bytes(labels)


def idx_input(images, labels):
    return struct.pack("<H", len(images)) + images + labels


def cifar_input(c10, names, records):
    flags = (0 if c10 else 1) | (2 if names is not None else 0)
    text = (names or "").encode()
    return bytes([flags]) + struct.pack("<H", len(text)) + text + records


def cifar_record(c10, label, k=0):
    head = bytes([label]) if c10 else bytes([3, label])
    return head + bytes((k * 37 + i * 5) & 255 for i in range(3072))


def image_bytes(img, fmt, **options):
    out = io.BytesIO()
    img.save(out, fmt, **options)
    return out.getvalue()


def ramp(mode, w=8, h=6):
    img = Image.new("RGB", (w, h))
    img.putdata([(x * 30, y * 40, (x + y) * 15) for y in range(h) for x in range(w)])
    return img.convert(mode)


def main(root):
    corpora = {"idx_corpus": {}, "cifar_corpus": {}, "image_corpus": {}}
    idx = corpora["idx_corpus"]
    images, labels = idx_images(3, 4, 2), idx_labels([2, 0, 9])
    idx["raw_valid"] = idx_input(images, labels)
    idx["gz_valid"] = idx_input(gzip.compress(images, mtime=0), gzip.compress(labels, mtime=0))
    idx["gz_images_raw_labels"] = idx_input(gzip.compress(images, mtime=0), labels)
    idx["bad_magic"] = idx_input(labels, images)
    idx["truncated"] = idx_input(images[:-3], labels)
    idx["count_mismatch"] = idx_input(images, idx_labels([1, 2]))
    idx["huge_claim"] = idx_input(struct.pack(">IIII", 0x803, 1 << 20, 1 << 10, 1 << 10) + b"\1\2", labels)
    idx["gz_truncated"] = idx_input(gzip.compress(images, mtime=0)[:-9], labels)

    cifar = corpora["cifar_corpus"]
    names10 = "\n".join(["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"])
    cifar["c10_valid"] = cifar_input(True, None, cifar_record(True, 3))
    cifar["c10_names"] = cifar_input(True, names10 + "\n", cifar_record(True, 9, 1))
    cifar["c100_names"] = cifar_input(False, "\r\n".join("c%d" % i for i in range(100)), cifar_record(False, 99))
    cifar["c10_bad_label"] = cifar_input(True, None, cifar_record(True, 10))
    cifar["c10_short"] = cifar_input(True, None, cifar_record(True, 1)[:1500])
    cifar["c10_few_names"] = cifar_input(True, "a\nb\n", cifar_record(True, 1)[:3073])

    img = corpora["image_corpus"]
    img["rgb.png"] = image_bytes(ramp("RGB"), "PNG")
    img["rgba.png"] = image_bytes(ramp("RGBA"), "PNG")
    img["gray.png"] = image_bytes(ramp("L"), "PNG")
    img["gray_alpha.png"] = image_bytes(ramp("LA"), "PNG")
    img["palette.png"] = image_bytes(ramp("P"), "PNG")
    img["bits1.png"] = image_bytes(ramp("1"), "PNG")
    img["gray16.png"] = image_bytes(ramp("L").convert("I").point(lambda v: v * 257).convert("I;16"), "PNG")
    img["baseline.jpg"] = image_bytes(ramp("RGB", 16, 16), "JPEG", quality=80)
    img["progressive.jpg"] = image_bytes(ramp("RGB", 16, 16), "JPEG", quality=80, progressive=True)
    img["gray.jpg"] = image_bytes(ramp("L", 16, 16), "JPEG", quality=80)
    img["cmyk.jpg"] = image_bytes(ramp("CMYK", 8, 8), "JPEG", quality=80)
    img["subsample444_restart.jpg"] = image_bytes(ramp("RGB", 16, 16), "JPEG", quality=90, subsampling=0,
                                                  restart_marker_blocks=1)
    img["truncated.png"] = img["rgb.png"][:40]
    img["truncated.jpg"] = img["baseline.jpg"][: len(img["baseline.jpg"]) // 2]
    img["huge_header.png"] = b"\x89PNG\r\n\x1a\n" + struct.pack(">I", 13) + b"IHDR" + struct.pack(
        ">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0) + b"\0\0\0\0"
    img["text.jpg"] = b"not an image at all\n"

    for corpus, files in corpora.items():
        os.makedirs(os.path.join(root, corpus), exist_ok=True)
        for name, data in files.items():
            with open(os.path.join(root, corpus, name), "wb") as f:
                f.write(data)
        print(corpus, len(files), "files,", sum(len(d) for d in files.values()), "bytes")


if __name__ == "__main__":
    main(sys.argv[1])
