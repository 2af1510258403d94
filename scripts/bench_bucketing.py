"""Padded positions per training epoch with and without length-bucketed batches.

A training batch is right-padded to its longest item, so the LLM processes batch_size x max
length positions per step. This prints, for the clip lengths of a generated `synthetic_scenes`
training set, how many positions an epoch costs with random batches and with
`train.recipe.bucket_batches` = 4, 8, 16 (audio tokens: 25 per second; plus the text prompt).

    python scripts/bench_bucketing.py [--seconds-min 3 --seconds-max 10 --long-share 0.2]
"""

from __future__ import annotations

import argparse
import math

from audioprune.data.scenes import FAMILIES, plan_scene
from audioprune.train_projector import batch_order

PROMPT_TOKENS = 45  # chat template, question and options, answer (about; same for every item)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=1600)
    ap.add_argument("--seed", type=int, default=1006)
    ap.add_argument("--seconds-min", type=float, default=3.0)
    ap.add_argument("--seconds-max", type=float, default=10.0)
    ap.add_argument("--long-share", type=float, default=0.2)
    ap.add_argument("--batch-size", type=int, default=8)
    args = ap.parse_args()
    lengths = []
    for i in range(args.clips):
        scene = plan_scene(
            i, args.seed, FAMILIES, args.seconds_min, args.seconds_max, args.long_share, 30.0
        )
        # the encoder's valid tokens for d seconds: 100 mel frames/s, conv stride 2, pool 2
        lengths.append(math.ceil(scene.duration * 100) // 4 + PROMPT_TOKENS)
    per_epoch = args.clips // args.batch_size
    useful = sum(
        lengths[i] for s in range(per_epoch) for i in batch_order(args.clips, args.batch_size, 0, s)
    )
    print(
        f"{args.clips} clips of {args.seconds_min:g}-{args.seconds_max:g} s "
        f"({args.long_share:.0%} up to 30 s), batch {args.batch_size}: {useful:,} real positions"
    )
    for bucket in (0, 4, 8, 16):
        padded = 0
        for s in range(per_epoch):
            batch = batch_order(args.clips, args.batch_size, 0, s, lengths, bucket)
            padded += args.batch_size * max(lengths[i] for i in batch)
        print(
            f"  bucket_batches={bucket:>2}: {padded:>10,} padded positions per epoch "
            f"({padded / useful:.2f} x the real ones)"
        )


if __name__ == "__main__":
    main()
