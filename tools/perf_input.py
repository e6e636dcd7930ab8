"""Images/s of the training input pipeline alone (no model), streamed from files or decoded in memory.

Usage::

    .venv/bin/python tools/perf_input.py --data ../shared/data/cifar10-jpeg --image-size 96
    .venv/bin/python tools/perf_input.py --data ROOT --image-size 96 --mode memory --limit 10000

Each mode runs in its own process, so its peak RSS is its own: ``stream`` lists the training split
and decodes files batch by batch with the one decoder (:func:`edgesmith.train.input.make_file_dataset`);
``memory`` decodes the split into an array first (:func:`edgesmith.core.data.load_split`, cached as
``.npz``) and times the pipeline over it. Both then shuffle, batch and augment exactly as training
does (``--augment``, default ``default``: flip + pad-and-crop). Printed per mode: images, seconds to
get ready (listing or decoding), img/s over ``--seconds`` after one warm-up batch, peak RSS (MiB).
Nothing here is asserted: it is a measurement, for docs/training.md.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time


def _one(args) -> dict:
    from edgesmith.core.data import DataSpec, list_split, load_split, parse_image_size
    from edgesmith.train.input import FileDecoder, dataset_throughput, make_dataset, make_file_dataset

    spec = DataSpec(args.data, limit_train=args.limit, image_size=parse_image_size(args.image_size)
                    if args.image_size else None)
    t0 = time.perf_counter()
    kw = dict(batch_size=args.batch_size, training=True, seed=0, augment=args.augment)
    if args.mode == "stream":
        fs = list_split(spec, "train")
        size = spec.image_size or None
        from edgesmith.core.images import decode_image

        hw = size or decode_image(fs.files[0], fs.channels).shape[:2]
        ds = make_file_dataset(fs.files, fs.labels, FileDecoder(fs.channels, size, spec.resize, expect_hw=tuple(hw)),
                               **kw)
        n = len(fs)
    else:
        split = load_split(spec, "train")
        ds = make_dataset(split.images, split.labels, **kw)
        n = len(split)
    ready = time.perf_counter() - t0
    ips = dataset_throughput(ds, args.seconds)
    return {"mode": args.mode, "images": n, "ready_s": round(ready, 1), "img_per_s": round(ips, 1),
            "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            "cpus": os.cpu_count()}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="a class-folder dataset (ROOT/train/<class>/... etc.)")
    p.add_argument("--image-size", default=None, help="H or HxW; default: the images' own size")
    p.add_argument("--mode", choices=("stream", "memory", "both"), default="stream")
    p.add_argument("--limit", type=int, default=None, help="at most N training images")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--augment", default="default")
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if args.child:
        print(json.dumps(_one(args)))
        return 0
    modes = ("stream", "memory") if args.mode == "both" else (args.mode,)
    for mode in modes:
        cmd = [sys.executable, __file__, "--child", "--mode", mode, "--data", args.data, "--batch-size",
               str(args.batch_size), "--augment", args.augment, "--seconds", str(args.seconds)]
        cmd += ["--image-size", args.image_size] if args.image_size else []
        cmd += ["--limit", str(args.limit)] if args.limit else []
        out = subprocess.run(cmd, capture_output=True, text=True)
        if out.returncode:
            print(out.stderr[-2000:], file=sys.stderr)
            return out.returncode
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{r['mode']:>6}: {r['images']:,} images, ready in {r['ready_s']} s, {r['img_per_s']:,.0f} img/s "
              f"(decode + shuffle + augment, no model), peak RSS {r['peak_rss_mib']:,} MiB, {r['cpus']} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
