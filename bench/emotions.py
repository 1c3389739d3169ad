"""Stage 2 throughput: face crops per second for ViT-B-32 inference on CPU, batched and unbatched.

Also prints the machine's matmul GFLOP/s and the model's GFLOP per crop, so a figure from a busy host
can be read against the ceiling it implies.

Random weights (``pretrained=None``) have the real cost of the real model. Prints crops/s for the
fine-tuned classifier's forward pass (image tower + head) at batch 1 and batch N, the crop-and-
preprocess cost alone, the dialogue backend's lines per second, and the process's peak memory.

    .venv/bin/python bench/emotions.py [--crops 32] [--batch 32] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np
import torch
from PIL import Image


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux reports KiB


def crops(n: int, size: int = 224) -> list[Image.Image]:
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)) for _ in range(n)]


def rate(fn, items: int, repeat: int = 1) -> float:
    fn()  # warm-up: first calls allocate and pick kernels
    start = time.perf_counter()
    for _ in range(repeat):
        fn()
    return items * repeat / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--crops", type=int, default=32)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from m2m.emotion_backends.clip import EmotionClassifier, Preprocess, build_clip, resolve_spec
    from m2m.emotion_backends.crops import crop_face
    from m2m.emotion_backends.dialogue import line_emotion
    from m2m.emotions import EmotionOptions

    # Other processes share the cores; the load average says how far to trust the figures.
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device cpu, "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    base_mb = peak_mb()
    t = time.perf_counter()
    spec, _, preprocess = resolve_spec("ViT-B-32", None)
    clip = build_clip(spec)
    model = EmotionClassifier(clip.visual, int(spec.config["embed_dim"]), 7).eval()
    del clip
    print(f"build ViT-B-32 (random weights): {time.perf_counter() - t:.1f} s, peak RSS {peak_mb():.0f} MB "
          f"(before: {base_mb:.0f} MB)")

    # The machine's own speed, so the crops/s below can be read against it on a shared or loaded host.
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    matmul = rate(lambda: a @ b, 1, repeat=20) * 2 * 1024**3 / 1e9
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(torch.zeros(1, 3, preprocess.size, preprocess.size))
    per_crop = counter.get_total_flops() / 1e9
    print(f"machine: {matmul:.1f} GFLOP/s (1024x1024 fp32 matmul); ViT-B-32 + head: {per_crop:.1f} GFLOP per crop "
          f"-> at most {matmul / per_crop:.1f} crops/s at that rate")

    images = crops(args.crops)
    transform = Preprocess(size=preprocess.size).transform()
    tensors = torch.stack([transform(im) for im in images])

    def forward(batch: int) -> None:
        with torch.inference_mode():
            for i in range(0, len(tensors), batch):
                model(tensors[i:i + batch])

    unbatched = rate(lambda: forward(1), args.crops)
    batched = rate(lambda: forward(args.batch), args.crops)
    print(f"ViT-B-32 forward, batch 1:  {unbatched:7.1f} crops/s")
    print(f"ViT-B-32 forward, batch {args.batch}: {batched:7.1f} crops/s  ({batched / unbatched:.2f}x batch 1)")

    page = Image.fromarray(np.random.default_rng(1).integers(0, 256, (1654, 2340, 3), dtype=np.uint8))
    options = EmotionOptions()
    boxes = [(100 + 7 * i, 200 + 5 * i, 180 + 7 * i, 290 + 5 * i) for i in range(args.crops)]
    prep = rate(lambda: [transform(crop_face(page, b, options).image) for b in boxes], args.crops)
    print(f"crop + preprocess alone:    {prep:7.1f} crops/s")
    end_to_end = 1.0 / (1.0 / batched + 1.0 / prep)
    print(f"crop + batched forward:     {end_to_end:7.1f} crops/s (serial estimate)")

    lines = ["本当にうれしい！", "ふざけるな！", "怖い…", "えっ!?", "明日は晴れです", "あいつは嫌いだ"] * 20
    line_emotion(lines[0])
    per_s = rate(lambda: [line_emotion(s) for s in lines], len(lines))
    print(f"dialogue backend (ML-Ask):  {per_s:7.1f} lines/s")
    print(f"peak RSS: {peak_mb():.0f} MB")


if __name__ == "__main__":
    main()
