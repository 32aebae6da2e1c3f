"""Generates every golden fixture from PyTorch (CPU) into the directory given as argv[1].

Each golden_*.py module beside this file has a function make(outdir) that writes one fixture file.
"""
import importlib
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

MODULES = ["golden_ops", "golden_conv", "golden_layers", "golden_optim", "golden_transforms"]


def main():
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)
    import torch
    torch.manual_seed(0)
    torch.set_num_threads(1)
    for name in MODULES:
        importlib.import_module(name).make(outdir)
        print(f"golden: {name} written to {outdir}")


if __name__ == "__main__":
    main()
