"""Train the miniature Qwen2-Audio's projector on synthetic_scenes (encoder and LLM frozen).

    python -m audioprune.train_projector model=mini_qwen2_audio dataset=synthetic_scenes \
        [train.recipe.steps=450] [train.out=DIR]

Root config `configs/train_projector.yaml` (the run config plus a `train:` block; its recipe is
the shipped projector's). What happens:
1. the training and held-out scenes are generated (`train.train_args` / `train.heldout_args`
   over the dataset's args) and the frozen encoder's outputs of every clip are computed once
   and cached under `${paths.cache_dir}/train_projector/` (a clip of d seconds is encoded in a
   window of ceil(d + 0.5) s instead of 30 s: padded frames are masked out of the attention,
   so the valid tokens are the 30 s window's up to float rounding, at a fraction of the cost);
2. the projector starts from `mini_alm.init_projector` (seeded), or from the projector file
   `train.recipe.init` (a later stage of training), and is trained with AdamW on
   the answer tokens (the choice text + `<|im_end|>`) of the prompt the model config's
   `prompts.mcq` renders, inside the same chat template the adapter uses; the LLM body runs
   under bf16 autocast, the LM head in fp32;
3. every `eval_every` steps the held-out accuracy per family is logged: the choice whose first
   token has the highest logit after the prompt (each family's choices start with distinct
   tokens, checked), i.e. choice scoring restricted to the choices;
4. `<out>/checkpoint.pt` (projector, optimizer, step, history) is written every
   `checkpoint_every` steps and at the end; re-running the same command resumes there. The data
   order depends only on the seed and the epoch, so a resumed run ends with the same weights as
   an uninterrupted one. The result is `<out>/projector.safetensors` (+ `<out>/summary.json`).
Threads: `train.recipe.threads` (default 1: on a loaded machine more threads are slower).
Pruning-aware training: `train.recipe.drop_share` (> 0) prunes that share of the training items'
audio tokens at random before the LLM, to a retention drawn from `train.recipe.drop_retentions`
(`drop_tokens`); `configs/train_projector_pruneaware.yaml` is the measured recipe.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig
from tqdm.auto import tqdm

from audioprune.config import CONFIG_DIR, plain
from audioprune.data import load_audio
from audioprune.data.base import load_dataset
from audioprune.prompts import render_prompt
from audioprune.records import Sample

log = logging.getLogger(__name__)
FEATURES_VERSION = "1"


@dataclass
class Recipe:
    """Projector training settings (configs/train_projector.yaml holds the shipped ones)."""

    steps: int = 220
    batch_size: int = 8
    lr: float = 1.5e-3
    weight_decay: float = 0.0
    warmup_steps: int = 10
    schedule: str = "cosine"  # cosine (to 10 % of lr) | constant
    seed: int = 0
    threads: int = 1
    autocast: str = "bfloat16"  # bfloat16 | none: the LLM body's dtype in training
    eval_every: int = 50
    eval_clips: int = 100  # held-out clips scored every eval_every steps (all at the end)
    checkpoint_every: int = 25
    # A projector file to start from instead of the seeded init (a second stage of training).
    init: str | None = None
    # Pruning-aware training: this share of the training items has its audio tokens pruned at
    # random before the LLM, each item to a retention drawn from `drop_retentions` (K = the
    # harness's keep_count(N, r), the kept tokens in their order); 0 trains on whole clips.
    drop_share: float = 0.0
    drop_retentions: tuple[float, ...] = (0.5, 0.25, 0.1)
    # Length-bucketed batches: within each run of `bucket_batches` batches of an epoch's
    # permutation the items are sorted by sequence length before they are cut into batches,
    # and the epoch's batches are then shuffled; a batch is padded to its longest item, so
    # similar lengths together cost fewer padded positions. 0 = plain random batches.
    bucket_batches: int = 0

    def __post_init__(self):
        if self.schedule not in ("cosine", "constant"):
            raise ValueError(
                f"train.recipe.schedule must be cosine or constant, got {self.schedule!r}"
            )
        if self.autocast not in ("bfloat16", "none"):
            raise ValueError(
                f"train.recipe.autocast must be bfloat16 or none, got {self.autocast!r}"
            )
        for name in ("steps", "batch_size", "threads", "eval_every", "checkpoint_every"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"train.recipe.{name} must be >= 1, got {getattr(self, name)}")
        if int(self.bucket_batches) < 0:
            raise ValueError(
                f"train.recipe.bucket_batches must be >= 0 (0 = random batches), got "
                f"{self.bucket_batches}"
            )
        if not 0.0 <= float(self.drop_share) <= 1.0:
            raise ValueError(f"train.recipe.drop_share must be in [0, 1], got {self.drop_share}")
        self.drop_retentions = tuple(float(r) for r in self.drop_retentions)
        if not self.drop_retentions or not all(0.0 < r <= 1.0 for r in self.drop_retentions):
            raise ValueError(
                "train.recipe.drop_retentions must be a non-empty list of retentions in (0, 1], "
                f"got {list(self.drop_retentions)}"
            )

    def lr_at(self, step: int) -> float:
        """Learning rate of optimizer step `step` (0-based): linear warm-up, then the schedule."""
        if step < self.warmup_steps:
            return self.lr * (step + 1) / self.warmup_steps
        if self.schedule == "constant":
            return self.lr
        progress = (step - self.warmup_steps) / max(1, self.steps - self.warmup_steps)
        return self.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress))))


# ---------------------------------------------------------------------------- encoder outputs


def windowed_tower(tower, positions: int):
    """A copy of the audio tower whose window is `positions` encoder frames (50 per second)
    instead of 1500: same weights, position table cut to its first `positions` rows."""
    from transformers import Qwen2AudioEncoder

    config = tower.config.__class__.from_dict(
        {**tower.config.to_dict(), "max_source_positions": positions}
    )
    small = Qwen2AudioEncoder(config).eval()
    state = tower.state_dict()
    state["embed_positions.weight"] = state["embed_positions.weight"][:positions]
    small.load_state_dict(state, strict=True)
    return small.to(next(tower.parameters()).dtype)


@torch.inference_mode()
def encode_short(adapter, wave: np.ndarray, towers: dict) -> torch.Tensor:
    """Valid encoder tokens of one clip ([N, D_audio] float32), computed in a window of
    ceil(seconds + 0.5) s; equals the adapter's 30 s encode up to float rounding."""
    from transformers.masking_utils import create_bidirectional_mask

    fe = adapter.feature_extractor
    seconds = min(30, math.ceil(len(wave) / fe.sampling_rate + 0.5))
    positions = seconds * 50
    if positions not in towers:
        towers[positions] = windowed_tower(adapter.model.model.audio_tower, positions)
    tower = towers[positions]
    feats = fe(
        [np.asarray(wave, np.float32)],
        sampling_rate=fe.sampling_rate,
        padding="max_length",
        max_length=positions * 2 * fe.hop_length,
        return_attention_mask=True,
        return_tensors="pt",
    )
    mask = feats["attention_mask"]
    frame_len, token_len = tower._get_feat_extract_output_lengths(mask.sum(-1))
    valid = torch.arange(positions)[None, :] < frame_len[:, None]
    attn = create_bidirectional_mask(
        config=tower.config,
        inputs_embeds=torch.zeros(1, positions, 1),
        attention_mask=valid.long(),
    )
    hidden = tower(feats["input_features"].to(tower.dtype), attention_mask=attn).last_hidden_state
    return hidden[0, : int(token_len[0])].float()


def cached_features(
    cfg, adapter, samples: list[Sample], folder_key: str, encoder_id: str
) -> dict[str, torch.Tensor]:
    """{sample id: [N, D_audio]} for every sample, from the cache file or computed (and saved).
    The file is keyed by the dataset's generation arguments and `encoder_id` (the encoder's
    source hash)."""
    from safetensors.torch import load_file, save_file

    key = hashlib.sha256(f"{folder_key}|{encoder_id}|{FEATURES_VERSION}".encode()).hexdigest()[:16]
    path = Path(cfg.paths.cache_dir) / "train_projector" / f"features-{key}.safetensors"
    if path.is_file():
        found = load_file(str(path))
        if all(s.id in found for s in samples):
            return found
    towers: dict = {}
    out = {}
    for sample in tqdm(samples, desc="encoder outputs", unit="clip", dynamic_ncols=True):
        wave = load_audio(sample.audio_path, adapter.sampling_rate, adapter.min_samples)
        out[sample.id] = encode_short(adapter, wave, towers).contiguous()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    save_file(out, str(tmp))
    tmp.replace(path)
    return out


# ---------------------------------------------------------------------------- batches


@dataclass
class Item:
    id: str
    family: str
    prompt_ids: list[int]  # the chat prompt with N audio placeholders
    answer_ids: list[int]  # the answer's tokens + <|im_end|>
    choice_first: list[int]  # first token of each choice
    answer_index: int


def make_items(adapter, samples: list[Sample], features: dict, template: str) -> list[Item]:
    """Tokenised training / scoring items; refuses a sample whose choices share a first token."""
    from audioprune.models.mini_alm import IM_END

    tok = adapter.tokenizer
    im_end = tok.convert_tokens_to_ids(IM_END)
    items = []
    for s in samples:
        n = int(features[s.id].shape[0])
        text = adapter.chat_text(render_prompt(template, s)).replace(
            adapter.audio_token, adapter.audio_token * n
        )
        prompt = tok(text, add_special_tokens=False).input_ids
        firsts = [tok(c, add_special_tokens=False).input_ids[0] for c in s.choices]
        if len(set(firsts)) != len(firsts):
            raise ValueError(
                f"sample {s.id!r}: choices {s.choices} share a first token; first-token choice "
                "scoring needs distinct ones"
            )
        answer = tok(s.answer, add_special_tokens=False).input_ids + [im_end]
        family = str(s.meta.get("family", s.meta.get("task")))
        items.append(Item(s.id, family, prompt, answer, firsts, s.choices.index(s.answer)))
    return items


def drop_tokens(
    items: list[Item], features: dict, recipe: Recipe, step: int, audio_token_id: int
) -> tuple[list[Item], dict]:
    """Pruning-aware training: the batch of optimizer step `step` with the audio tokens of a
    `recipe.drop_share` share of its items pruned at random (a function of the seed and step).

    A pruned item of N audio tokens keeps K = keep_count(N, r) of them (r drawn from
    `recipe.drop_retentions`), chosen uniformly without replacement and kept in their order;
    its prompt carries K placeholders, its features are those K rows [K, 384]. Returns the
    items (pruned ones under ids `<id>@<row>`) and the features of exactly those ids.
    """
    from audioprune.budget import keep_count

    if recipe.drop_share <= 0.0:
        return items, {it.id: features[it.id] for it in items}
    rng = np.random.default_rng([recipe.seed, step, 0x5EED])
    out_items, out_features = [], {}
    for row, it in enumerate(items):
        audio = features[it.id]
        if rng.uniform() >= recipe.drop_share:
            out_items.append(it)
            out_features[it.id] = audio
            continue
        n = int(audio.shape[0])
        k = keep_count(n, float(rng.choice(recipe.drop_retentions)))
        kept = np.sort(rng.choice(n, size=k, replace=False))
        slots = [i for i, t in enumerate(it.prompt_ids) if t == audio_token_id]
        if len(slots) != n:
            raise RuntimeError(f"item {it.id!r}: {len(slots)} audio placeholders for {n} tokens")
        dropped = set(slots[k:])  # the placeholders are one token: drop any N - K of them
        prompt = [t for i, t in enumerate(it.prompt_ids) if i not in dropped]
        new_id = f"{it.id}@{row}"
        out_items.append(replace(it, id=new_id, prompt_ids=prompt))
        out_features[new_id] = audio[torch.from_numpy(kept)]
    return out_items, out_features


def _embed_batch(model, items: list[Item], features: dict, with_answer: bool):
    """Right-padded inputs_embeds [B, S, H] (projected audio in the placeholder slots, with
    gradient to the projector), attention mask [B, S] and each row's sequence length."""
    seqs = [it.prompt_ids + (it.answer_ids if with_answer else []) for it in items]
    width = max(len(s) for s in seqs)
    pad = model.generation_config.pad_token_id
    ids = torch.full((len(seqs), width), pad, dtype=torch.long)
    mask = torch.zeros(len(seqs), width, dtype=torch.long)
    for row, seq in enumerate(seqs):
        ids[row, : len(seq)] = torch.tensor(seq)
        mask[row, : len(seq)] = 1
    with torch.no_grad():
        embeds = model.get_input_embeddings()(ids)
    audio = torch.cat([features[it.id] for it in items])
    projected = model.model.multi_modal_projector(audio.to(embeds.dtype))
    slots = (ids == model.config.audio_token_id) & mask.bool()
    if int(slots.sum()) != projected.shape[0]:
        raise RuntimeError(f"{int(slots.sum())} audio slots for {projected.shape[0]} audio tokens")
    embeds = embeds.masked_scatter(slots[..., None], projected)
    return embeds, mask, [len(s) for s in seqs]


def _body(model, embeds, mask, autocast: str):
    dtype = torch.bfloat16 if autocast == "bfloat16" else None
    with torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
        out = model.model.language_model(inputs_embeds=embeds, attention_mask=mask)
    return out.last_hidden_state


def loss_on_answers(model, items: list[Item], features: dict, autocast: str) -> torch.Tensor:
    """Mean cross-entropy of the answer tokens (choice text + <|im_end|>) given the prompt."""
    embeds, mask, lengths = _embed_batch(model, items, features, with_answer=True)
    hidden = _body(model, embeds, mask, autocast)
    rows, cols, targets = [], [], []
    for row, it in enumerate(items):
        start = len(it.prompt_ids)
        for j, token in enumerate(it.answer_ids):
            rows.append(row)
            cols.append(start + j - 1)  # the position that predicts answer token j
            targets.append(token)
    logits = model.lm_head(hidden[rows, cols].float())
    return torch.nn.functional.cross_entropy(logits, torch.tensor(targets))


@torch.no_grad()
def first_token_choices(
    model, items: list[Item], features: dict, autocast: str, batch_size: int = 8
) -> list[int]:
    """Per item the index of the choice whose first token has the highest logit after the prompt."""
    picks = []
    for start in range(0, len(items), batch_size):
        batch = items[start : start + batch_size]
        embeds, mask, lengths = _embed_batch(model, batch, features, with_answer=False)
        hidden = _body(model, embeds, mask, autocast)
        last = hidden[torch.arange(len(batch)), torch.tensor(lengths) - 1]
        logits = model.lm_head(last.float())
        for row, it in enumerate(batch):
            picks.append(int(torch.argmax(logits[row, it.choice_first])))
    return picks


def accuracy_by_family(items: list[Item], picks: list[int]) -> dict[str, float]:
    """{"overall": %, family: %} of picks equal to the answers."""
    hits: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for it, pick in zip(items, picks):
        for key in ("overall", it.family):
            hits[key][0] += int(pick == it.answer_index)
            hits[key][1] += 1
    return {k: round(100.0 * h / n, 2) for k, (h, n) in sorted(hits.items())}


# ---------------------------------------------------------------------------- training


def batch_order(
    num_items: int,
    batch_size: int,
    seed: int,
    step: int,
    lengths: list[int] | None = None,
    bucket_batches: int = 0,
) -> list[int]:
    """Item indices of optimizer step `step`: epochs are seeded permutations, cut in batches
    (the last partial batch of an epoch is dropped); a function of (seed, step) only.

    With `bucket_batches` > 0 and the items' `lengths`, each run of `bucket_batches` batches of
    the permutation is sorted by length before it is cut, and the epoch's batches are shuffled
    (same items per epoch, each exactly once; similar lengths share a batch)."""
    per_epoch = num_items // batch_size
    if per_epoch < 1:
        raise ValueError(f"{num_items} training items give no batch of {batch_size}")
    epoch, index = divmod(step, per_epoch)
    perm = torch.randperm(
        num_items, generator=torch.Generator().manual_seed(seed * 100_003 + epoch)
    )
    if bucket_batches <= 0:
        return perm[index * batch_size : (index + 1) * batch_size].tolist()
    if lengths is None or len(lengths) != num_items:
        raise ValueError("length-bucketed batches need the length of every item")
    used = perm[: per_epoch * batch_size].tolist()
    run = bucket_batches * batch_size
    ordered = []
    for start in range(0, len(used), run):
        ordered += sorted(used[start : start + run], key=lambda i: lengths[i])
    batches = [ordered[b * batch_size : (b + 1) * batch_size] for b in range(per_epoch)]
    shuffle = torch.randperm(
        per_epoch, generator=torch.Generator().manual_seed(seed * 100_003 + epoch + 7_919)
    )
    return batches[int(shuffle[index])]


def _with_defaults(saved: dict) -> dict:
    """A checkpoint's recipe with the fields added since it was written at their defaults (a
    recipe field added later, at its default, changes nothing)."""
    defaults = asdict(Recipe())
    return {**defaults, **saved, **{k: tuple(v) for k, v in saved.items() if isinstance(v, list)}}


def _save_checkpoint(path: Path, state: dict) -> None:
    tmp = path.with_name(path.name + ".partial")
    torch.save(state, tmp)
    tmp.replace(path)


def train(
    model,
    train_items: list[Item],
    eval_items: list[Item],
    features: dict,
    recipe: Recipe,
    out: Path,
    progress: bool = True,
) -> dict:
    """Train `model`'s projector in place (everything else frozen); returns the summary."""
    out.mkdir(parents=True, exist_ok=True)
    for p in model.parameters():
        p.requires_grad_(False)
    projector = model.model.multi_modal_projector
    for p in projector.parameters():
        p.requires_grad_(True)
    optimizer = torch.optim.AdamW(
        projector.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay
    )
    checkpoint = out / "checkpoint.pt"
    history: list[dict] = []
    step = 0
    seconds = 0.0
    if checkpoint.is_file():
        state = torch.load(checkpoint, weights_only=False)
        if _with_defaults(state["recipe"]) != asdict(recipe):
            raise ValueError(
                f"{checkpoint} was written by another recipe ({state['recipe']}); use another "
                "train.out or delete the checkpoint"
            )
        projector.load_state_dict(state["projector"])
        optimizer.load_state_dict(state["optimizer"])
        step, history, seconds = state["step"], state["history"], state["seconds"]
        log.info("resuming at step %d from %s", step, checkpoint)
    # The log holds exactly the steps the weights have seen: lines written after the last
    # checkpoint (a run stopped between two) are dropped, so a resumed run does not log twice.
    (out / "log.jsonl").write_text("".join(json.dumps(entry) + "\n" for entry in history))

    def snapshot():
        return {
            "recipe": asdict(recipe),
            "projector": projector.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "history": history,
            "seconds": seconds,
        }

    def evaluate(items, autocast):
        model.eval()
        return accuracy_by_family(items, first_token_choices(model, items, features, autocast))

    logfile = out / "log.jsonl"
    subset = eval_items[: recipe.eval_clips]
    lengths = [len(it.prompt_ids) for it in train_items]
    bar = tqdm(
        total=recipe.steps, initial=step, desc="projector", disable=not progress, dynamic_ncols=True
    )
    while step < recipe.steps:
        t0 = time.perf_counter()
        batch = [
            train_items[i]
            for i in batch_order(
                len(train_items),
                recipe.batch_size,
                recipe.seed,
                step,
                lengths,
                recipe.bucket_batches,
            )
        ]
        for group in optimizer.param_groups:
            group["lr"] = recipe.lr_at(step)
        batch, batch_features = drop_tokens(
            batch, features, recipe, step, int(model.config.audio_token_id)
        )
        loss = loss_on_answers(model, batch, batch_features, recipe.autocast)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        step += 1
        seconds += time.perf_counter() - t0
        entry = {
            "step": step,
            "loss": round(float(loss.detach()), 5),
            "lr": recipe.lr_at(step - 1),
            "seconds": round(seconds, 1),
        }
        if step % recipe.eval_every == 0 and subset:
            entry["heldout"] = evaluate(subset, recipe.autocast)
            log.info("step %d: held-out first-token accuracy %s", step, entry["heldout"])
        history.append(entry)
        with open(logfile, "a") as f:
            f.write(json.dumps(entry) + "\n")
        bar.update(1)
        bar.set_postfix(
            loss=f"{float(loss.detach()):.3f}", acc=entry.get("heldout", {}).get("overall", "")
        )
        if step % recipe.checkpoint_every == 0 or step == recipe.steps:
            _save_checkpoint(checkpoint, snapshot())
    bar.close()
    final = evaluate(eval_items, "none") if eval_items else {}
    return {"steps": step, "train_seconds": round(seconds, 1), "heldout": final, "history": history}


def _merged_args(cfg, extra) -> dict:
    args = dict(plain(cfg.dataset.args))
    args.update(plain(extra) or {})
    return args


def run_training(cfg: DictConfig) -> dict:
    """Everything `main` does, on a composed config; returns the summary (also saved)."""
    from audioprune.identity import prompt_template
    from audioprune.models.mini_alm import (
        assemble,
        ensure_smollm2,
        ensure_whisper_tiny_en,
        save_projector,
    )
    from audioprune.models.qwen2_audio import Qwen2AudioAdapter

    if cfg.model.get("build_tiny") != "mini_qwen2_audio":
        raise ValueError(
            f"train_projector trains the miniature Qwen2-Audio's projector: model=mini_qwen2_audio "
            f"(model.build_tiny=mini_qwen2_audio), got model={cfg.model.name!r}"
        )
    if cfg.dataset.loader != "synthetic_scenes":
        raise ValueError(
            f"train_projector trains on generated scenes: dataset=synthetic_scenes, got {cfg.dataset.name!r}"
        )
    t = cfg.train
    recipe = Recipe(**plain(t.recipe))
    torch.set_num_threads(recipe.threads)
    torch.manual_seed(recipe.seed)
    out = Path(t.out)
    started = time.perf_counter()

    models = Path(cfg.model.pretrained).parent
    whisper_dir = ensure_whisper_tiny_en(models / "whisper-tiny.en")
    llm_dir = ensure_smollm2(models / "smollm2-135m-instruct")
    model, processor = assemble(whisper_dir, llm_dir, recipe.init or int(recipe.seed))
    adapter = Qwen2AudioAdapter.from_model(model, processor, label=str(models / "mini-train"))
    encoder_id = (Path(whisper_dir) / "conversion.json").read_text()

    template = prompt_template(cfg)
    splits = {}
    for split, extra in (("train", t.train_args), ("heldout", t.heldout_args)):
        args = _merged_args(cfg, extra)
        samples, info = load_dataset(cfg.dataset.loader, **args)
        folder_key = json.dumps(info.extra["generation"], sort_keys=True)
        features = cached_features(cfg, adapter, samples, folder_key, encoder_id)
        splits[split] = (samples, features, info.extra["generation"])
    features = {**splits["train"][1], **splits["heldout"][1]}
    train_items = make_items(adapter, splits["train"][0], features, template)
    eval_items = make_items(adapter, splits["heldout"][0], features, template)
    prep_seconds = time.perf_counter() - started

    summary = train(
        model, train_items, eval_items, features, recipe, out, cfg.get("progress", True)
    )
    summary |= {
        "recipe": asdict(recipe),
        "train_data": splits["train"][2],
        "heldout_data": splits["heldout"][2],
        "prompt": template,
        "prep_seconds": round(prep_seconds, 1),
        "wall_seconds": round(time.perf_counter() - started, 1),
        "scoring": "first-token logit restricted to the item's choices (fp32 at the end: "
        f"autocast {recipe.autocast} in training and periodic checks)",
    }
    projector = model.model.multi_modal_projector.linear
    save_projector(
        projector,
        out / "projector.safetensors",
        {"recipe": asdict(recipe), "heldout": summary["heldout"]},
    )
    history = summary.pop("history")
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    summary["history"] = history
    log.info(
        "projector saved to %s; held-out accuracy %s",
        out / "projector.safetensors",
        summary["heldout"],
    )
    return summary


@hydra.main(version_base="1.3", config_path=str(CONFIG_DIR), config_name="train_projector")
def main(cfg: DictConfig) -> float | None:
    logging.getLogger("audioprune").setLevel(logging.INFO)
    summary = run_training(cfg)
    return summary["heldout"].get("overall")


if __name__ == "__main__":
    main()
