#!/usr/bin/env python3
"""PyTorch's side of bench/compare_torch.sh: torchvision models, eager, cudnn.benchmark=True, PyTorch's default
TF32 settings (cuDNN convolutions TF32, matmul strict FP32), in NCHW (PyTorch's default) and channels_last.
One line per row: arch mode batch layout ms_per_batch images_per_s peak_mb. Synthetic data, 224x224,
warm-up then the median of --iters steps, each timed with CUDA events."""
import argparse
import torch
import torchvision

p = argparse.ArgumentParser()
p.add_argument("--rows", required=True, help="comma list of arch:mode:batch, mode infer|train|features")
p.add_argument("--iters", type=int, default=20)
p.add_argument("--warmup", type=int, default=5)
p.add_argument("--layouts", default="nchw,channels_last", help="comma list of nchw, channels_last")
p.add_argument("--profile", action="store_true",
               help="print torch.profiler's per-kernel table over the timed steps (when nsys is not available)")
a = p.parse_args()

torch.backends.cudnn.benchmark = True
dev = torch.device("cuda")
print(f"# torch {torch.__version__} cuda {torch.version.cuda} cudnn {torch.backends.cudnn.version()} "
      f"gpu {torch.cuda.get_device_name(0)}", flush=True)


def run(arch, mode, batch, layout):
    torch.manual_seed(0)
    model = getattr(torchvision.models, arch)().to(dev)
    if mode == "features":  # frozen backbone, new trainable head: the feature-extraction step
        for prm in model.parameters():
            prm.requires_grad_(False)
        head = model.fc if hasattr(model, "fc") else model.classifier[-1]
        for prm in head.parameters():
            prm.requires_grad_(True)
    fmt = torch.channels_last if layout == "channels_last" else torch.contiguous_format
    model = model.to(memory_format=fmt)
    x = torch.randn(batch, 3, 224, 224, device=dev).to(memory_format=fmt)
    y = torch.randint(0, 1000, (batch,), device=dev)
    opt = torch.optim.SGD([q for q in model.parameters() if q.requires_grad], lr=1e-3, momentum=0.9)
    model.train(mode != "infer")

    def step():
        if mode == "infer":
            with torch.no_grad():
                model(x)
        else:
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)

    for _ in range(a.warmup):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    times = []
    prof = None
    if a.profile:
        prof = torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CUDA])
        prof.__enter__()
    for _ in range(a.iters):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        step()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    if prof is not None:
        prof.__exit__(None, None, None)
        print(f"# torch.profiler, {a.iters} steps: {arch} {mode} {batch} {layout}")
        # ms per step by kernel, the same shape as graft bench --profile's table
        def dev_us(e):  # torch >= 2.4 names it self_device_time_total
            return getattr(e, "self_device_time_total", None) or getattr(e, "self_cuda_time_total", 0)
        kernels = [e for e in prof.key_averages() if dev_us(e) > 0 and e.self_cpu_time_total == 0]
        total = sum(dev_us(e) for e in kernels)
        launches = sum(e.count for e in kernels)
        print(f"kernel profile: {total / a.iters / 1e3:.3f} ms of kernel time per step, "
              f"{launches / a.iters:.1f} launches per step, {len(kernels)} kernels")
        for e in sorted(kernels, key=lambda e: -dev_us(e))[:30]:
            print(f"{dev_us(e) / a.iters / 1e3:9.3f} ms {100 * dev_us(e) / total:5.1f}% "
                  f"{e.count / a.iters:7.1f}x  {e.key[:150]}")
    times.sort()
    ms = times[len(times) // 2]
    peak = torch.cuda.max_memory_allocated() / 2**20
    print(f"torch arch={arch} mode={mode} batch={batch} layout={layout} ms_per_batch={ms:.3f} "
          f"images_per_s={batch * 1000 / ms:.1f} peak_mb={peak:.0f}", flush=True)
    del model, x, y, opt
    torch.cuda.empty_cache()


for row in a.rows.split(","):
    arch, mode, batch = row.split(":")
    for layout in a.layouts.split(","):
        try:
            run(arch, mode, int(batch), layout)
        except Exception as e:  # e.g. out of memory: say so and go on with the next row
            print(f"torch arch={arch} mode={mode} batch={batch} layout={layout} ERROR {type(e).__name__}: "
                  f"{str(e).splitlines()[0][:200]}", flush=True)
            torch.cuda.empty_cache()
