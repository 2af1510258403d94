"""TokenWindow fields derived on demand: projected tokens and the instruction's embeddings.

The encoder cache keeps what the encoder computes (scores, hidden, keys). Fields a selector
derives from those or from the prompt — the tokens after the projector (`projected`, for
DivPrune, CDPruner, SA-MAP, FastAdaSP) and the prompt's LLM input embeddings (`instruction`, for
CDPruner's instruction relevance) — are added here, per clip, just before selection. So a cached
entry written by a run that did not need them serves every selector, and the cache does not grow
by the LLM width (4096 vs 1280 per token on Qwen2-Audio).
"""

from __future__ import annotations

from dataclasses import replace

import torch

from audioprune.models.base import AudioLMAdapter, EncodedAudio

DERIVED_NEEDS = frozenset({"projected", "instruction"})


def complete_windows(
    adapter: AudioLMAdapter, encoded: EncodedAudio, needs: frozenset[str], prompt: str = ""
) -> EncodedAudio:
    """A copy of `encoded` whose windows carry the derived fields in `needs`.

    projected: adapter.project_tokens(hidden) [N_w, D_llm] for every window lacking it (one
    projector call for all windows of the clip); instruction: adapter.embed_text(prompt)
    [M, D_llm], shared by the windows. `encoded` itself (maybe a cache entry) is not modified.
    """
    if not needs & DERIVED_NEEDS:
        return encoded
    windows = list(encoded.windows)
    if "projected" in needs:
        todo = [i for i, w in enumerate(windows) if w.projected is None]
        if todo:
            hidden = torch.cat([windows[i].hidden for i in todo])
            projected = adapter.project_tokens(hidden).split([windows[i].num_tokens for i in todo])
            for i, rows in zip(todo, projected):
                windows[i] = replace(windows[i], projected=rows)
    if "instruction" in needs:
        if not prompt:
            raise ValueError("the selector needs the instruction, but the prompt is empty")
        instruction = adapter.embed_text(prompt)
        windows = [replace(w, instruction=instruction) for w in windows]
    return EncodedAudio(windows=windows)
