"""Shared math of the merging selectors (ToMe, A-ToMe, LTBM-style, FastAdaSP, SA-MAP).

A merge is described by group labels: `group[i]` is the *representative* (the original index
where the merged token sits) of original token i. Merged embeddings are then weighted group
means of the original rows, so a token that absorbed others over several rounds equals the
size-weighted running average ToMe carries (`merge_wavg`) up to float rounding, and tests can
check every merged row against its members directly.

All functions are pure tensor math on one window; shapes in the docstrings. They run on the
tensors' device and read no value back on the host (counts are tracked on the host instead),
except `adjacent_groups`, whose greedy pair acceptance is a sequential scan (one transfer per
round); value checks run on CPU tensors only (`selectors.base.on_host`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from audioprune.selectors.base import on_host


def unit_rows(x: torch.Tensor) -> torch.Tensor:
    """Rows scaled to unit L2 norm in fp32: [N, D] -> [N, D] (zero rows stay zero)."""
    return F.normalize(x.float(), dim=-1)


def cosine_matrix(x: torch.Tensor) -> torch.Tensor:
    """Pairwise cosine similarity in fp32: [N, D] -> [N, N], with the diagonal exactly 1.

    The diagonal is set rather than computed: rounding would leave 1 ± 1e-7 there, and DPP
    selection starts from it (argmax of L_ii), so the documented tie-break (lowest index) would
    otherwise be decided by rounding noise.
    """
    unit = unit_rows(x)
    return (unit @ unit.T).fill_diagonal_(1.0)


def stable_descending(values: torch.Tensor) -> torch.Tensor:
    """Indices from largest to smallest value, ties in index order: [N] -> [N] long."""
    if on_host(values) and torch.isnan(values).any():
        raise ValueError("similarity or score values contain NaN")
    return torch.sort(values, descending=True, stable=True).indices


def representatives(group: torch.Tensor) -> torch.Tensor:
    """The current tokens of a labelling, ascending in time: group [N] long -> [T] long."""
    return torch.unique(group)  # sorted


def group_slots(group: torch.Tensor, count: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(reps [T] long ascending, slot [N] long: each row's group number) of a labelling.

    group: [N] long, values in [0, N). With `count` (T, when the caller knows it) nothing is read
    back from the device (`torch.unique` sizes its output from the data, which waits for an
    accelerator); the answer equals `torch.unique(group, return_inverse=True)`.
    """
    if count is None:
        return torch.unique(group, return_inverse=True)
    present = torch.zeros(len(group), dtype=torch.bool, device=group.device)
    present[group] = True
    reps = torch.nonzero_static(present, size=count).flatten()
    return reps, (torch.cumsum(present, 0) - 1)[group]


def group_means(
    values: torch.Tensor,
    group: torch.Tensor,
    weights: torch.Tensor | None = None,
    count: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Weighted mean of the rows of each group, in fp32.

    values: [N, D]; group: [N] long representative per row; weights: [N] float or None (all 1);
    count: the number of groups T when known (see `group_slots`).
    Returns (reps [T] long ascending, means [T, D] fp32) with means[t] = Σ_{i∈t} w_i·v_i / Σ w_i.
    """
    reps, slot = group_slots(group.to(values.device), count)
    w = torch.ones(len(group), device=values.device) if weights is None else weights.float()
    w = w.to(values.device)
    sums = torch.zeros(len(reps), values.shape[1], dtype=torch.float32, device=values.device)
    sums.index_add_(0, slot, values.float() * w[:, None])
    totals = torch.zeros(len(reps), dtype=torch.float32, device=values.device)
    totals.index_add_(0, slot, w)
    if on_host(totals) and bool((totals == 0).any()):
        raise ValueError("a merged group's weights sum to 0; its weighted mean is undefined")
    return reps, sums / totals[:, None]


def bipartite_round(metric: torch.Tensor, r: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One round of ToMe's bipartite soft matching over T tokens in time order.

    metric: [T, d] (current tokens' similarity features); r <= ⌊T/2⌋ merges.
    A = even positions, B = odd positions; each A token's best B by cosine (ties to the earlier
    B); the r A tokens with the highest best-score (ties to the earlier A) are sources.
    Returns (sources [r] long, destinations [r] long), positions into the T tokens.
    """
    unit = unit_rows(metric)
    a, b = unit[0::2], unit[1::2]
    best, best_b = (a @ b.T).max(dim=-1)  # max returns the first maximal index
    src = stable_descending(best)[:r]
    return 2 * src, 2 * best_b[src] + 1


def tome_groups(metric: torch.Tensor, k: int) -> torch.Tensor:
    """ToMe as a one-shot selector: repeat bipartite rounds until k tokens remain.

    metric: [N, d]; k in [1, N]. Each round works on the current tokens in time order with
    r_t = min(N_t − k, ⌊N_t/2⌋); a merged token's metric is the size-weighted mean of its
    members' metric (ToMe's `merge_wavg`) and it sits at its destination's position.
    Returns group [N] long: the representative (kept position) of every original token.
    """
    n = metric.shape[0]
    group = torch.arange(n, device=metric.device)
    t = n  # current tokens: every round removes exactly r (sources are A tokens, never B)
    while True:
        reps, current = group_means(metric, group, count=t)
        r = min(t - k, t // 2)
        if r <= 0:
            return group
        src, dst = bipartite_round(current, r)
        relabel = torch.arange(t, device=metric.device)
        relabel[src] = dst
        slot = torch.searchsorted(reps, group)
        group = reps[relabel[slot]]
        t -= r


def adjacent_groups(metric: torch.Tensor, k: int, trace: list[int] | None = None) -> torch.Tensor:
    """A-ToMe as a one-shot selector: greedy non-overlapping adjacent merges, repeated.

    metric: [N, d]; k in [1, N]. Each round ranks the adjacent pairs (t, t+1) of the current
    tokens by cosine (ties to the earlier pair) and accepts a pair when neither token is already
    in an accepted pair this round, until N_t − k pairs are accepted or none is left; the merged
    token sits at the left index and its metric is the size-weighted mean of its members'.
    Returns group [N] long (representative = first member of each run); `trace`, if given,
    receives the token count T_t at the start of every round (for the cost count).
    """
    n = metric.shape[0]
    group = torch.arange(n, device=metric.device)
    t = n
    while True:
        reps, current = group_means(metric, group, count=t)
        want = t - k
        if want <= 0 or t < 2:
            return group
        if trace is not None:
            trace.append(t)
        unit = unit_rows(current)
        sims = (unit[:-1] * unit[1:]).sum(-1)  # [T-1]
        # The greedy acceptance is a sequential scan: the ranking comes to the host once a round.
        used = [False] * t
        relabel = list(range(t))
        accepted = 0
        for p in stable_descending(sims).tolist():
            if used[p] or used[p + 1]:
                continue
            used[p] = used[p + 1] = True
            relabel[p + 1] = p
            accepted += 1
            if accepted == want:
                break
        slot = torch.searchsorted(reps, group)
        group = reps[torch.tensor(relabel).to(metric.device)[slot]]
        t -= accepted


def chain_groups(selected_edges: torch.Tensor, n: int) -> torch.Tensor:
    """Runs of selected adjacent edges -> groups (FastAdaSP's chain grouping).

    selected_edges: [m] long edge ids e (edge e joins tokens e and e+1), n tokens.
    A run of j selected edges merges j+1 tokens, so exactly m tokens disappear.
    Returns group [n] long: the first member of each run.
    """
    device = selected_edges.device
    joined = torch.zeros(n, dtype=torch.bool, device=device)  # token i continues i-1's group
    joined[selected_edges + 1] = True
    starts = torch.where(
        joined, torch.zeros(n, dtype=torch.long, device=device), torch.arange(n, device=device)
    )
    return torch.cummax(starts, dim=0).values


def linkage_groups(similarity: torch.Tensor, threshold: float) -> torch.Tensor:
    """SA-MAP's stage 1: grow a group while the next token's mean similarity to it is ≥ τ.

    similarity: [N, N] (cosine); walking in time, token i+1 joins the current group G when
    mean_{g∈G} S[g, i+1] ≥ threshold (average linkage over the whole group), otherwise it starts
    a new group. Returns group [N] long: the first member of each group.
    """
    n = similarity.shape[0]
    group = torch.zeros(n, dtype=torch.long)
    start, total = 0, None  # total: Σ_{g∈G} S[g, :] for the current group
    for i in range(n):
        if i > start and float(total[i]) / (i - start) >= threshold:
            total = total + similarity[i]
        else:
            start, total = i, similarity[i].clone()
        group[i] = start
    return group


def greedy_dpp_map(kernel: torch.Tensor, k: int, eps: float = 1e-10) -> torch.Tensor:
    """Fast greedy MAP inference of a DPP (Chen et al. 2018), as CDPruner runs it.

    kernel: [N, N] PSD (L = diag(r)·S·diag(r)); k in [1, N]. d²_i starts at L_ii; each step picks
    j = argmax d² (ties to the lowest index), e = (L_j − c_jᵀ c) / d_j, c ← [c; e], d² −= e²,
    d²_j = −∞. When the pick's d²_j ≤ `eps` (every remaining token lies in the span of the
    selection: duplicates, or K above the features' rank) the update is skipped instead of
    dividing by ~0, so the rest are taken by their residual d² (ties to the lowest index) and
    nothing turns into NaN. Returns [k] long in pick order (callers sort it into time order).
    The skip is a `torch.where` (e = 0 leaves basis and d² as they were), so no value is read
    back from the device.
    """
    kernel = kernel.float()
    n = kernel.shape[0]
    d2 = torch.diagonal(kernel).clone()
    basis = torch.zeros(k, n, dtype=torch.float32, device=kernel.device)
    picked = torch.empty(k, dtype=torch.long, device=kernel.device)
    for step in range(k):
        # j as a [1] tensor: a 0-dim index would be read back as a Python int
        j = torch.argmax(d2).view(1)
        picked[step : step + 1] = j
        pivot = d2.index_select(0, j)  # [1]
        covered = basis[:step].index_select(1, j)[:, 0] @ basis[:step]  # [N]
        e = (kernel.index_select(0, j)[0] - covered) / torch.sqrt(pivot.clamp(min=eps))
        e = torch.where(pivot > eps, e, torch.zeros_like(e))
        basis[step] = e
        d2 -= e * e
        d2.index_fill_(0, j, -float("inf"))
    return picked
