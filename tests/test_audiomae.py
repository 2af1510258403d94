"""The AudioMAE build: ViTModel + mean pool + fc_norm + head, timm keys mapped, pruning by the
attention patches receive, time-major patch order, positional crop options."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from _classifier import explicit_forward, random_features, tiny_pair

from audioprune.selectors import build_selector


@pytest.fixture(scope="module")
def tiny_maes(tmp_path_factory):
    from audioprune.models.audiomae import build_random_audiomae

    return tiny_pair(build_random_audiomae, tmp_path_factory.mktemp("mae"))


def adapter_for(path, **kwargs):
    from audioprune.models.audiomae import AudioMAEAdapter

    return AudioMAEAdapter(str(path), **kwargs)


@pytest.mark.parametrize("layers", [4, 12])
@pytest.mark.parametrize("selector", ["topk", "random", "bottomk", "variation"])
def test_pruned_forward_equals_explicit_reference(tiny_maes, layers, selector):
    adapter = adapter_for(tiny_maes[layers])
    assert adapter.spec.score == "received" and adapter.spec.extra == 1
    sel = build_selector(selector)
    features = random_features(2, seed=layers)
    for retention in (0.9, 0.6, 0.3) if layers == 4 else (0.7,):
        with torch.no_grad():
            logits, _ = adapter.classify(features, sel, retention, ["a", "b"])
            ref = explicit_forward(adapter, features, sel, retention, ["a", "b"])
        torch.testing.assert_close(logits, ref, atol=1e-5, rtol=0)


def test_retention_one_is_bit_identical_to_the_unpruned_model(tiny_maes):
    from audioprune.models.audiomae import load_audiomae

    features = random_features(2, seed=3)
    stock = load_audiomae(tiny_maes[12])
    adapter = adapter_for(tiny_maes[12])
    with torch.no_grad():
        assert torch.equal(
            adapter.classify(features, build_selector("topk"), 1.0, ["a", "b"])[0], stock(features)
        )


def timm_forward(state, features, heads, eps=1e-6):
    """AudioMAE's forward written over the timm state dict (fused qkv, norm1/norm2, fc_norm)."""
    x = F.conv2d(
        features.unsqueeze(1),
        state["patch_embed.proj.weight"],
        state["patch_embed.proj.bias"],
        stride=16,
    )
    x = x.flatten(2).transpose(1, 2)
    x = torch.cat([state["cls_token"].expand(x.shape[0], -1, -1), x], 1) + state["pos_embed"]
    i = 0
    while f"blocks.{i}.attn.qkv.weight" in state:
        p = f"blocks.{i}."
        h = F.layer_norm(x, x.shape[-1:], state[p + "norm1.weight"], state[p + "norm1.bias"], eps)
        b, n, d = h.shape
        qkv = F.linear(h, state[p + "attn.qkv.weight"], state[p + "attn.qkv.bias"])
        q, k, v = qkv.reshape(b, n, 3, heads, d // heads).permute(2, 0, 3, 1, 4)
        a = torch.softmax(q @ k.transpose(-1, -2) * (d // heads) ** -0.5, -1) @ v
        x = x + F.linear(
            a.transpose(1, 2).reshape(b, n, d),
            state[p + "attn.proj.weight"],
            state[p + "attn.proj.bias"],
        )
        h = F.layer_norm(x, x.shape[-1:], state[p + "norm2.weight"], state[p + "norm2.bias"], eps)
        h = F.linear(F.gelu(F.linear(h, state[p + "mlp.fc1.weight"], state[p + "mlp.fc1.bias"])),
                     state[p + "mlp.fc2.weight"], state[p + "mlp.fc2.bias"])  # fmt: skip
        x = x + h
        i += 1
    pooled = F.layer_norm(
        x[:, 1:].mean(1), x.shape[-1:], state["fc_norm.weight"], state["fc_norm.bias"], eps
    )
    return F.linear(pooled, state["head.weight"], state["head.bias"])


def test_timm_keys_map_onto_the_vit_build(tmp_path):
    """A timm-format checkpoint (random, tiny) loads by key mapping and computes what timm's
    layout computes; decoder keys of facebookresearch's pretrained.pth are ignored."""
    from safetensors.torch import save_file

    from audioprune.models.audiomae import load_audiomae

    g = torch.Generator().manual_seed(0)
    d, layers, patches = 32, 2, 8 * 4  # 64 frames x 128 bins -> 4 x 8 patches

    def r(*shape):
        return torch.randn(*shape, generator=g) * 0.1

    state = {"cls_token": r(1, 1, d), "pos_embed": r(1, 1 + patches, d),
             "patch_embed.proj.weight": r(d, 1, 16, 16), "patch_embed.proj.bias": r(d),
             "fc_norm.weight": 1 + r(d), "fc_norm.bias": r(d), "head.weight": r(5, d), "head.bias": r(5),
             "decoder_embed.weight": r(4, d), "mask_token": r(1, 1, d)}  # fmt: skip
    for i in range(layers):
        p = f"blocks.{i}."
        state |= {p + "norm1.weight": 1 + r(d), p + "norm1.bias": r(d), p + "attn.qkv.weight": r(3 * d, d),
                  p + "attn.qkv.bias": r(3 * d), p + "attn.proj.weight": r(d, d), p + "attn.proj.bias": r(d),
                  p + "norm2.weight": 1 + r(d), p + "norm2.bias": r(d), p + "mlp.fc1.weight": r(4 * d, d),
                  p + "mlp.fc1.bias": r(4 * d), p + "mlp.fc2.weight": r(d, 4 * d), p + "mlp.fc2.bias": r(d)}  # fmt: skip
    save_file(state, str(tmp_path / "model.safetensors"))
    torch.save({"model": state}, tmp_path / "pretrained.pth")
    features = random_features(2, frames=64)
    expected = timm_forward(state, features, heads=2)
    for source in ("model.safetensors", "pretrained.pth"):
        model = load_audiomae(tmp_path / source, num_attention_heads=2)
        with torch.no_grad():
            torch.testing.assert_close(model(features), expected, atol=1e-5, rtol=0)


def test_positional_crop_options():
    from audioprune.models.audiomae import crop_positions

    t_max, f = 8, 2
    pos = torch.arange(1 + t_max * f, dtype=torch.float32).reshape(1, -1, 1)  # id = 1 + t * F' + f
    correct = crop_positions(pos, (t_max, f), 2, "correct").flatten().tolist()
    assert correct == [0, 1, 2, 3, 4]  # CLS, then time rows 0 and 1 (both frequencies)
    authors = crop_positions(pos, (t_max, f), 2, "authors").flatten().tolist()
    assert authors == [0, 1, 2, 9, 10]  # the (F', T'max) reshape takes a strided subset


@pytest.mark.parametrize("pos_crop", ["correct", "authors"])
def test_cropped_forward_adds_the_cropped_positions(tmp_path, pos_crop):
    """A checkpoint built for 1024 frames runs on 512-frame input (ESC-50's length): the
    embeddings that reach the encoder are patch projections + the cropped positional grid."""
    from audioprune.models.audiomae import build_random_audiomae, crop_positions, load_audiomae

    path = build_random_audiomae(tmp_path / "m", ["a", "b"], frames=1024)
    full = load_audiomae(path).vit.embeddings.position_embeddings.detach()
    model = load_audiomae(path, frames=512, pos_crop=pos_crop)
    features = random_features(2, frames=512)
    emb = model.vit.embeddings
    with torch.no_grad():
        got = emb(features.unsqueeze(1))
        patches = emb.patch_embeddings(features.unsqueeze(1))
        cls = emb.cls_token.expand(2, -1, -1)
        expected = torch.cat([cls, patches], 1) + crop_positions(full, (64, 8), 32, pos_crop)
        logits = model(features)
    torch.testing.assert_close(got, expected)
    assert got.shape[1] == 1 + 32 * 8 and logits.shape == (2, 2)


@pytest.mark.parametrize("pos_crop", ["correct", "authors"])
def test_adapter_classifies_input_shorter_than_the_checkpoint(tmp_path, pos_crop):
    """SPC-2's 128 frames through the adapter on a 1024-frame checkpoint, pruned."""
    from audioprune.models.audiomae import build_random_audiomae

    path = build_random_audiomae(tmp_path / "m", ["a", "b"], frames=1024)
    adapter = adapter_for(path, features={"frames": 128}, pos_crop=pos_crop)
    features = random_features(2, frames=128)
    with torch.no_grad():
        logits, _ = adapter.classify(features, build_selector("topk"), 0.5, ["a", "b"])
        ref = explicit_forward(adapter, features, build_selector("topk"), 0.5, ["a", "b"])
    torch.testing.assert_close(logits, ref, atol=1e-5, rtol=0)
