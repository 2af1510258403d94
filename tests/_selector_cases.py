"""Fixed selector inputs and the outputs every encoder-stage selector gives on them.

`selector_outputs()` runs every selector configuration of `CASES` on seeded windows (and
`prune_clip` over a three-window clip under the global budget); `tests/data/selector_reference.pt`
holds what the code gave before selection moved onto the tokens' device (issue 16 §5), so
`test_selectors_device.py` proves the move changed no selection. Regenerate (only when a
selector's documented behaviour changes on purpose): `python tests/_selector_cases.py`.
"""

from __future__ import annotations

from pathlib import Path

import torch

REFERENCE = Path(__file__).parent / "data" / "selector_reference.pt"

# (selector name, params): every encoder-stage selector that runs on an ALM window.
CASES = [
    ("topk", {}),
    ("bottomk", {}),
    ("random", {"seed": 3}),
    ("uniform", {}),
    ("segmentwise_topk", {"segments": 4}),
    ("segmentwise_topk", {"segments": 4, "fill_remainder": False}),
    ("segmentwise_topk", {"segments": 50}),
    ("headrouter_lite", {}),
    ("visionzip", {}),
    ("divprune", {}),
    ("cdpruner", {"relevance": "none"}),
    ("cdpruner", {"relevance": "attention"}),
    ("cdpruner", {"relevance": "instruction"}),
    ("fastadasp", {}),
    ("fastadasp", {"merge": "mean"}),
    ("fastadasp", {"attention": "head_max"}),
    ("samap", {"threshold": 0.6}),
    ("samap_shared", {"threshold": 0.6}),
    ("samap_shared", {"threshold": 0.99}),
    ("tome", {}),
    ("tome", {"metric": "hidden"}),
    ("ltbm_style", {"window": 6}),
    ("atome", {}),
    ("atome", {"metric": "hidden"}),
    ("vispruner", {}),
    ("vispruner", {"important_ratio": 0.25, "per_round": 2}),
]
BUDGETS = (1, 5, 12, 31)


def make_window(seed: int, n: int = 32, dtype: torch.dtype = torch.float32):
    """A TokenWindow with every field, smooth in time (neighbours similar, so merges happen)
    and with tied scores (ties must break by time)."""
    from audioprune.selectors.base import TokenWindow

    g = torch.Generator().manual_seed(seed)

    def walk(d: int) -> torch.Tensor:  # a random walk: adjacent rows are similar
        return torch.cumsum(torch.randn(n, d, generator=g) * 0.4, 0) + torch.randn(d, generator=g)

    head_scores = torch.rand(4, n, generator=g)
    scores = head_scores.mean(0)
    scores[n // 6] = scores[n // 3] = scores[2 * n // 3]  # a three-way tie
    return TokenWindow(
        scores=scores,
        hidden=walk(8).to(dtype),
        keys=walk(6),
        sample_key=f"case{seed}#0",
        projected=walk(10).to(dtype),
        instruction=torch.randn(5, 10, generator=g).to(dtype),
        head_scores=head_scores,
        head_max_scores=head_scores.max(0).values,
        self_scores=torch.rand(n, generator=g),
    )


def case_key(name: str, params: dict) -> str:
    return name + "".join(f",{k}={v}" for k, v in sorted(params.items()))


def selector_outputs(to=lambda window: window) -> dict[str, dict]:
    """{case: {"k=K,seed=S": (indices, embeddings or None, space, flops)}} plus "prune_clip".

    to: applied to each input window before selection (the device tests move it)."""
    from audioprune.budget import Budget
    from audioprune.models.base import EncodedAudio
    from audioprune.pruning import prune_clip
    from audioprune.selectors import build_selector

    out: dict[str, dict] = {}
    for name, params in CASES:
        selector = build_selector(name, **params)
        results = {}
        for seed in (0, 1):
            for k in BUDGETS:
                sel = selector.select_window(to(make_window(seed)), k)
                flops = sel.flops if sel.flops is not None else None
                results[f"k={k},seed={seed}"] = (
                    sel.indices.cpu(),
                    None if sel.embeddings is None else sel.embeddings.cpu().float(),
                    sel.space,
                    flops,
                )
        out[case_key(name, params)] = results
    clip = EncodedAudio(windows=[to(make_window(s, n)) for s, n in ((4, 32), (5, 7), (6, 20))])
    pruned = {}
    for name, params in CASES:
        for budget in (Budget(), Budget(name="global")):
            got = prune_clip(clip, build_selector(name, **params), 0.3, "clip", budget)
            pruned[f"{case_key(name, params)}|{budget.name}"] = (
                [i.cpu() for i in got.indices],
                [t.cpu().float() for t in got.tokens],
                got.space,
                got.select_flops,
            )
    out["prune_clip"] = pruned
    return out


if __name__ == "__main__":
    torch.save(selector_outputs(), REFERENCE)
    print(f"wrote {REFERENCE}")
