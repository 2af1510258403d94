"""Every mask form transformers hands an encoder attention layer reaches the scorer correctly.

sdpa passes a 4-D bool mask, eager a 4-D additive float mask, flash_attention_2/3/4 a 2-D
(B, T) bool mask (`masking_utils.flash_attention_mask`), and all of them None when nothing is
padded. The end-to-end test runs the real tiny tower under an attention implementation that
gets exactly FA2's 2-D mask (registered through transformers' own interfaces, as flash-attn
itself is not installable on CPU), with a padded batch.
"""

from __future__ import annotations

import pytest
import torch
from _tiny import synthetic_clip, tiny_qwen2_audio_adapter

from audioprune.models.hooks import LastLayerScorer, key_validity_from_mask

T = 12
LENGTHS = [12, 7]
VALID = torch.arange(T)[None, :] < torch.tensor(LENGTHS)[:, None]  # [2, 12]


def sdpa_form() -> torch.Tensor:
    return VALID[:, None, None, :].expand(2, 1, T, T).clone()


def eager_form() -> torch.Tensor:
    mask = torch.zeros(2, 1, T, T)
    return mask.masked_fill(~VALID[:, None, None, :], torch.finfo(torch.float32).min)


def bf16_eager_form() -> torch.Tensor:
    mask = torch.zeros(2, 1, T, T, dtype=torch.bfloat16)
    return mask.masked_fill(~VALID[:, None, None, :], torch.finfo(torch.bfloat16).min)


PADDED_2D = "audioprune_test_padded_2d"  # a kernel that gets FA2's 2-D mask (see below)
# form -> (mask builder, the attention implementation that receives that form)
MASK_FORMS = {
    "4d_bool_sdpa": (sdpa_form, "sdpa"),
    "4d_additive_float_eager": (eager_form, "eager"),
    "4d_additive_bf16_eager": (bf16_eager_form, "eager"),
    "4d_bool_broadcast_query": (lambda: VALID[:, None, None, :].clone(), "sdpa"),  # [B,1,1,T]
    "2d_bool_flash": (lambda: VALID.clone(), PADDED_2D),
    "2d_int_flash": (lambda: VALID.long(), PADDED_2D),
}


@pytest.mark.parametrize("form", sorted(MASK_FORMS))
def test_key_validity_from_every_mask_form(form):
    got = key_validity_from_mask(MASK_FORMS[form][0](), batch=2, frames=T)
    assert got.dtype == torch.bool
    assert torch.equal(got, VALID)


def test_key_validity_without_mask_is_all_valid():
    assert torch.equal(key_validity_from_mask(None, 2, T), torch.ones(2, T, dtype=torch.bool))


def test_key_validity_refuses_unknown_mask_forms():
    with pytest.raises(TypeError, match="attention mask"):
        key_validity_from_mask(torch.ones(2, T, T), 2, T)  # 3-D: no transformers kernel passes it
    with pytest.raises(ValueError, match=r"\(2, 5\)"):
        key_validity_from_mask(torch.ones(2, 5, dtype=torch.bool), 2, T)  # wrong length


@pytest.mark.parametrize("form", sorted(MASK_FORMS))
def test_scorer_hook_gives_the_same_scores_for_every_mask_form(form):
    """The module run under the kernel that gets each form: scores equal the 4-D bool ones."""
    _register_padded_2d()
    torch.manual_seed(0)
    attn = _tiny_attention()
    scorer = LastLayerScorer(attn)
    hidden = torch.randn(2, T, attn.embed_dim)
    attn(hidden, attention_mask=sdpa_form())
    reference = scorer.frame_scores.clone()
    build, implementation = MASK_FORMS[form]
    attn.config._attn_implementation = implementation
    attn(hidden, attention_mask=build())
    torch.testing.assert_close(scorer.frame_scores, reference, atol=1e-6, rtol=0)
    assert torch.all(scorer.frame_scores[1, LENGTHS[1] :] == 0)


def _tiny_attention():
    from transformers import Qwen2AudioEncoderConfig
    from transformers.models.qwen2_audio.modeling_qwen2_audio import Qwen2AudioAttention

    config = Qwen2AudioEncoderConfig(d_model=16, encoder_attention_heads=2)
    config._attn_implementation = "sdpa"
    return Qwen2AudioAttention(16, 2, config=config).eval()


def _register_padded_2d() -> None:
    """An attention kernel that receives FA2's 2-D mask and computes sdpa attention with it."""
    from transformers import AttentionInterface, AttentionMaskInterface
    from transformers.integrations.sdpa_attention import sdpa_attention_forward
    from transformers.masking_utils import flash_attention_mask

    def padded_2d(module, query, key, value, attention_mask, **kwargs):
        if attention_mask is not None:
            assert attention_mask.dim() == 2, "the test kernel must get FA2's 2-D mask"
            attention_mask = attention_mask.bool()[:, None, None, :]
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)

    AttentionInterface.register(PADDED_2D, padded_2d)
    AttentionMaskInterface.register(PADDED_2D, flash_attention_mask)


def test_padded_batch_under_a_flash_attention_mask_scores_like_sdpa(session_cache):
    """Issue 9 item 9: FA2 passes (B, T) masks and padded batches crashed in the scorer."""
    from audioprune.models.qwen2_audio import Qwen2AudioAdapter

    sdpa = tiny_qwen2_audio_adapter(session_cache)
    _register_padded_2d()
    flash = Qwen2AudioAdapter(sdpa.pretrained, attn_implementation=PADDED_2D)
    assert flash.model.model.audio_tower.config._attn_implementation == PADDED_2D
    masks = []
    handle = flash.model.model.audio_tower.layers[-1].self_attn.register_forward_pre_hook(
        lambda m, a, kw: masks.append(kw.get("attention_mask")), with_kwargs=True
    )
    clips = [synthetic_clip(30.0, seed=0), synthetic_clip(10.0, seed=1)]
    try:
        got = flash.encode(clips)
    finally:
        handle.remove()
    assert masks[0].dim() == 2 and masks[0].shape == (2, 1500)  # really FA2's form
    want = sdpa.encode(clips)
    for g, w in zip(got, want):
        (gw,), (ww,) = g.windows, w.windows
        assert gw.num_tokens == ww.num_tokens
        torch.testing.assert_close(gw.scores, ww.scores, atol=1e-6, rtol=0)
        torch.testing.assert_close(gw.hidden, ww.hidden, atol=1e-5, rtol=1e-5)


def test_flex_attention_is_refused_at_load_naming_the_option(tmp_path):
    from audioprune.models.qwen2_audio import Qwen2AudioAdapter

    with pytest.raises(ValueError, match="attn_implementation='flex_attention'"):
        Qwen2AudioAdapter(str(tmp_path / "never-built"), attn_implementation="flex_attention")
