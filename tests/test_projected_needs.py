"""Selectors that read the LLM input space, on the tiny Qwen2-Audio: projected tokens and the
instruction's embeddings reach the selector (also from cached encoder outputs, which do not
store them), and what the selector returns is what the LLM gets."""

from __future__ import annotations

import json

import pytest
import torch
from _tiny import synthetic_clip, tiny_qwen2_audio_adapter

from audioprune import runner
from audioprune.budget import keep_count
from audioprune.cache import EncoderCache
from audioprune.data import load_dataset
from audioprune.loops.alm import _file_key
from audioprune.models.needs import complete_windows
from audioprune.prompts import render_prompt
from audioprune.pruning import prune_clip
from audioprune.selectors import build_selector

PROMPT = "Describe the audio in one sentence."


@pytest.fixture(scope="module")
def adapter(session_cache):
    return tiny_qwen2_audio_adapter(session_cache)


@pytest.fixture(scope="module")
def encoded(adapter):
    """One 12 s clip encoded with its projected tokens: EncodedAudio with one window."""
    return adapter.encode([synthetic_clip(12.0)], frozenset({"hidden", "keys", "projected"}))[0]


def projector(adapter, hidden: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return adapter.model.model.multi_modal_projector(hidden)


def test_encode_projects_only_when_asked(adapter, encoded):
    window = encoded.windows[0]
    assert window.projected.shape == (
        window.num_tokens,
        adapter.model.config.text_config.hidden_size,
    )
    torch.testing.assert_close(window.projected, projector(adapter, window.hidden))
    plain = adapter.encode([synthetic_clip(12.0)], frozenset({"hidden", "keys"}))[0]
    assert plain.windows[0].projected is None


@pytest.mark.parametrize("disk", [False, True])
def test_cached_entries_without_projection_are_completed_lazily(adapter, encoded, tmp_path, disk):
    cache = EncoderCache(memory=not disk, disk=disk, directory=tmp_path)
    cache.put("fp", "clip", encoded)
    reader = EncoderCache(memory=False, disk=True, directory=tmp_path) if disk else cache
    (hit,) = reader.lookup("fp", ["clip"])
    assert hit.windows[0].projected is None  # the cache keeps scores, hidden, keys only
    completed = complete_windows(adapter, hit, frozenset({"projected"}))
    assert hit.windows[0].projected is None  # the cache entry is not modified
    torch.testing.assert_close(completed.windows[0].projected, encoded.windows[0].projected)
    k = keep_count(encoded.windows[0].num_tokens, 0.25)
    fresh = build_selector("divprune").select_window(encoded.windows[0], k)
    cached = build_selector("divprune").select_window(completed.windows[0], k)
    assert torch.equal(fresh.indices, cached.indices)


def test_instruction_is_the_prompt_llm_embedding(adapter, encoded):
    completed = complete_windows(adapter, encoded, frozenset({"projected", "instruction"}), PROMPT)
    ids = adapter.tokenizer(PROMPT, add_special_tokens=False).input_ids
    with torch.no_grad():
        expected = adapter.model.get_input_embeddings()(torch.tensor(ids))
    torch.testing.assert_close(completed.windows[0].instruction, expected)
    with pytest.raises(ValueError, match="prompt is empty"):
        complete_windows(adapter, encoded, frozenset({"instruction"}), "")


def audio_embeds(adapter, pruned) -> torch.Tensor:
    """The embeddings the LLM receives at the audio placeholders: [K, D_llm]."""
    inputs = adapter.prepare_inputs([PROMPT], [pruned])
    slots = inputs["input_ids"][0] == adapter.audio_token_id
    return inputs["inputs_embeds"][0][slots]


def test_projected_space_merges_reach_the_llm_unchanged(adapter, encoded):
    selector = build_selector("fastadasp")
    pruned = prune_clip(encoded, selector, 0.25, "clip")
    assert pruned.space == "projected"
    window = encoded.windows[0]
    groups = selector.groups(window, keep_count(window.num_tokens, 0.25))
    kept = pruned.indices[0]
    assert len(torch.unique(groups)) < window.num_tokens  # tokens really merged
    w = window.scores
    expected = torch.stack(
        [
            (w[groups == p, None] * window.projected[groups == p]).sum(0) / w[groups == p].sum()
            for p in kept.tolist()
        ]
    )
    torch.testing.assert_close(audio_embeds(adapter, pruned), expected)


def test_encoder_space_selection_is_projected_by_the_adapter(adapter, encoded):
    pruned = prune_clip(encoded, build_selector("cdpruner"), 0.25, "clip")
    assert pruned.space == "encoder"
    kept = pruned.indices[0]
    expected = projector(adapter, encoded.windows[0].hidden[kept])
    torch.testing.assert_close(audio_embeds(adapter, pruned), expected)


@pytest.mark.slow
def test_run_with_instruction_relevance_selects_from_cached_encoder_outputs(compose_cfg):
    """A sweep's second selector reads the cache (no projection stored there); the kept tokens
    it records are DPP picks under the rendered prompt's embeddings, as computed directly."""
    base = (
        "model=tiny_qwen2_audio",
        "dataset=synthetic_captions",
        "dataset.args.num_clips=1",
        "model.generation.max_new_tokens=2",
    )
    cfg = compose_cfg(*base, "selector=cdpruner", "selector.relevance=instruction")
    runner.reset_process_state()
    try:
        runner.run(compose_cfg(*base, "selector=tome", "retention=0.25"))
        result = runner.run(cfg)
        cache = runner.get_cache(cfg)
        assert (cache.misses, cache.hits) == (1, 1)  # cdpruner's windows came from the cache
        adapter = runner.get_adapter(cfg.model)
        samples, _ = load_dataset(cfg.dataset.loader, **runner.plain(cfg.dataset.args))
        template = runner.prompt_template(cfg)
        records = {
            r["id"]: r
            for r in map(
                json.loads, (result.run_dir / "predictions.jsonl").read_text().splitlines()
            )
        }
        selector = build_selector("cdpruner", relevance="instruction")
        for sample in samples:
            (hit,) = cache.lookup(adapter.fingerprint(), [_file_key(sample.audio_path, 16000)])
            prompt = render_prompt(template, sample)
            window = complete_windows(adapter, hit, selector.needs, prompt).windows[0]
            k = keep_count(window.num_tokens, float(cfg.retention))
            expected = selector.select_window(window, k).indices.tolist()
            assert records[sample.id]["kept_indices"] == [expected]
            assert records[sample.id]["select_flops"] == selector.selection_flops(window, k) > 0
            uninstructed = build_selector("cdpruner").select_window(window, k).indices.tolist()
            assert uninstructed != expected  # the instruction changed the choice
    finally:
        runner.reset_process_state()
