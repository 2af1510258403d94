"""What every Whisper-encoder audio LM adapter shares: loading, the audio path, the LLM path.

Qwen2-Audio and Audio Flamingo 3 (and models built like them) have the same shape in
transformers 5.23: `model.audio_tower` (a Whisper encoder ending in AvgPool(2, 2)),
`model.multi_modal_projector`, `model.language_model` and `lm_head`, an `audio_token_id` in the
config, and a stock `generate` that skips its own audio merge when it is given `inputs_embeds`.
`WhisperStyleAdapter` implements `AudioLMAdapter` once for all of them:
- loading: config `model_type` check, stock `from_pretrained` (no subclass: pitfall P1),
  structure check naming what is missing, `LastLayerScorer` on the last encoder self-attention;
- `encode`: the model's windows (subclass) through the audio tower (subclass), scored, split into
  one `TokenWindow` per window;
- `generate`: the projected kept tokens are scattered into exactly that many placeholders of the
  tokenized prompt (subclass) and the stock `generate` runs on `input_ids` + `inputs_embeds`, so
  the LLM prefill, attention mask and KV cache all have the pruned length (P7); LLM forwards are
  timed by `PrefillTimer`, peak CUDA memory is read around the call;
- `score_choices` (option `scoring: choice_loglik`): the same prompt rows as `generate`, run
  once, then each choice's tokens on the prompt's KV cache; log p of the choice tokens summed
  (in-LLM selectors: the prompt's forward under their hooks, as generate's prefill);
- analytic cost (`audioprune.flops`): `prefill_flops` per prompt length and `audio_flops` per
  clip, from the loaded config.
A subclass says how its model windows audio, runs its encoder and builds its prompt text.
"""

from __future__ import annotations

import contextlib
import inspect
from abc import abstractmethod

import numpy as np
import torch

from audioprune import attention_scores, flops
from audioprune.errors import ConfigError
from audioprune.models import llm_pruning
from audioprune.models.base import (
    AudioLMAdapter,
    BatchTiming,
    ChoiceScores,
    EncodedAudio,
    Generation,
    PrunedAudio,
)
from audioprune.models.hooks import LastLayerScorer
from audioprune.models.needs import complete_windows
from audioprune.models.runtime import (
    PrefillTimer,
    adapter_fingerprint,
    load_checkpoint,
    peak_memory_mb,
    reset_peak_memory,
    resolve_device,
    resolve_dtype,
)
from audioprune.selectors.base import TokenWindow

POSITION_MODES = ("compact", "original")
# Attribute paths every adapter relies on, checked right after loading; a part is only reported
# when its parent exists, so a plain LLM is said to lack `model.audio_tower`, not its children.
REQUIRED_PARTS = (
    "model.audio_tower",
    "model.audio_tower.layers",
    "model.audio_tower._get_feat_extract_output_lengths",
    "model.multi_modal_projector",
    "model.language_model",
    "lm_head",
)
SCORED_ATTENTION = "model.audio_tower.layers[-1].self_attn"


def _get_path(obj, dotted: str):
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def missing_parts(model) -> list[str]:
    """The REQUIRED_PARTS (and the scored attention's q_proj / k_proj / scaling) `model` lacks."""
    missing: list[str] = []
    for dotted in REQUIRED_PARTS:
        if any(dotted.startswith(f"{gone}.") for gone in missing):
            continue
        try:
            _get_path(model, dotted)
        except AttributeError:
            missing.append(dotted)
    if any(m in ("model.audio_tower", "model.audio_tower.layers") for m in missing):
        return missing
    try:
        attn = model.model.audio_tower.layers[-1].self_attn
    except (AttributeError, IndexError, TypeError):
        missing.append(SCORED_ATTENTION)
    else:
        missing += [
            f"...self_attn.{a}" for a in ("q_proj", "k_proj", "scaling") if not hasattr(attn, a)
        ]
    return missing


def original_positions(
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    audio_token_id: int,
    audio: list[PrunedAudio],
) -> torch.Tensor:
    """Position ids that keep the original time spacing of the kept audio tokens (P6).

    input_ids, attention_mask: [B, S] left-padded; returns [B, S] long. Text before the audio
    counts up from 0, kept token j of window w sits at start + offset_w + indices_w[j], and
    the text after the audio resumes at start + Σ N_w, as if nothing had been pruned. Pad
    positions get 0, as generate's own cumsum rule gives them.
    """
    positions = torch.zeros_like(input_ids, dtype=torch.long)
    for row in range(input_ids.shape[0]):
        valid = attention_mask[row].bool()
        ids = input_ids[row][valid]
        slots = (ids == audio_token_id).nonzero().flatten()
        kept = audio[row]
        offsets = np.cumsum([0, *kept.window_sizes[:-1]]).tolist()
        audio_pos = torch.cat([idx.cpu().long() + off for idx, off in zip(kept.indices, offsets)])
        if slots.numel() != audio_pos.numel() or (
            slots.numel() and int(slots[-1] - slots[0]) + 1 != slots.numel()
        ):
            raise ValueError(
                f"original_positions: row {row} has {slots.numel()} audio placeholders "
                f"(expected one contiguous run of {audio_pos.numel()})"
            )
        first, after = int(slots[0]), int(slots[-1]) + 1
        row_pos = torch.arange(ids.shape[0])
        row_pos[first:after] = first + audio_pos
        row_pos[after:] = first + kept.total + torch.arange(ids.shape[0] - after)
        positions[row, valid] = row_pos
    return positions


def padded_features(feature_extractor, waveforms: list[np.ndarray], sampling_rate: int):
    """A Whisper feature extractor over clips padded to its 30 s window: a BatchFeature with
    input_features [B, n_mels, 3000] and attention_mask [B, 3000] (1 on real frames)."""
    return feature_extractor(
        [np.asarray(w, dtype=np.float32) for w in waveforms],
        sampling_rate=sampling_rate,
        padding="max_length",
        return_attention_mask=True,
        return_tensors="pt",
    )


class WhisperStyleAdapter(AudioLMAdapter):
    """A Whisper-encoder audio LM behind the AudioLMAdapter interface; see the module docstring.

    pretrained: hub id or local directory
    dtype: weights dtype ("float32", "bfloat16", "float16")
    device: "cpu", "cuda", "cuda:1", ... or "auto" (cuda when available)
    attn_implementation: attention kernel for every layer (the scorer never needs eager)
    build_tiny: tiny-model kind (see audioprune.models.tiny.TINY_BUILDERS) to build at
        `pretrained` first when that local path does not exist yet
    build_args: the builder's options, for kinds built from files (mini_qwen2_audio:
        `projector`, another projector file than the shipped one)

    Subclasses set `expected_class` (the transformers class loaded), `expected_model_type` and
    implement `_audio_features`, `_tower_forward`, `chat_messages` and `_tokenize_prompts`.
    """

    expected_class: str = ""
    expected_model_type: str = ""
    # Windows per audio-tower forward (None: all windows of a batch in one forward).
    encoder_windows_per_forward: int | None = None

    def __init__(
        self,
        pretrained: str,
        dtype: str = "float32",
        device: str = "cpu",
        attn_implementation: str = "sdpa",
        build_tiny: str | None = None,
        build_args: dict | None = None,
    ):
        if str(attn_implementation).startswith("flex_attention"):
            # Its mask is a BlockMask: padded frames cannot be read back, so scores would be wrong.
            raise ConfigError(
                f"{type(self).__name__}: model option attn_implementation={attn_implementation!r} "
                "is not supported (the scorer cannot read padding from a flex_attention BlockMask); "
                "use sdpa (default), eager or flash_attention_2"
            )
        self.pretrained = str(pretrained)
        self.dtype = resolve_dtype(dtype)
        self.device = resolve_device(device)
        if build_tiny:  # built once; a checked kind is rebuilt when its inputs changed
            from audioprune.models.tiny import ensure_tiny_model

            ensure_tiny_model(build_tiny, self.pretrained, build_args)
        self.attn_implementation = attn_implementation

        model, processor = load_checkpoint(
            type(self).__name__,
            self.pretrained,
            self.expected_class,
            self.expected_model_type,
            dtype=self.dtype,
            device=self.device,
            attn_implementation=attn_implementation,
            expected=f"{SCORED_ATTENTION}, model.multi_modal_projector and model.language_model",
        )
        self._attach(model, processor)

    @classmethod
    def from_model(cls, model, processor, label: str = "in-memory") -> WhisperStyleAdapter:
        """Wrap an already built model and processor (benchmarks with random real-size weights).

        The model stays where it is (device, dtype); `label` stands in for `pretrained`.
        """
        self = cls.__new__(cls)
        self.pretrained = label
        self.dtype = model.dtype
        self.device = model.device
        self.attn_implementation = model.config._attn_implementation
        self._attach(model, processor)
        return self

    @classmethod
    def check_model(cls, model, source: str = "") -> None:
        """Raise TypeError unless `model` has the parts this adapter uses (REQUIRED_PARTS)."""
        missing = missing_parts(model)
        if missing:
            where = f" loaded from {source!r}" if source else ""
            raise TypeError(
                f"{cls.__name__}: the model{where} is a {type(model).__name__}, which lacks "
                f"{', '.join(missing)}; expected a {cls.expected_class} with {SCORED_ATTENTION}, "
                "model.multi_modal_projector, model.language_model and lm_head"
            )

    def _attach(self, model, processor) -> None:
        self.check_model(model, self.pretrained)
        self.model = model.to(self.device).eval()
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.tokenizer.padding_side = "left"  # generate appends on the right
        self.feature_extractor = processor.feature_extractor
        self.sampling_rate = int(self.feature_extractor.sampling_rate)
        self.audio_token = processor.audio_token
        self.audio_token_id = int(model.config.audio_token_id)
        if self.tokenizer.convert_tokens_to_ids(self.audio_token) != self.audio_token_id:
            raise ValueError(
                f"{type(self).__name__}: tokenizer id of {self.audio_token!r} does not match the "
                f"model config's audio_token_id={self.audio_token_id} in {self.pretrained!r}"
            )
        self.scorer = LastLayerScorer(model.model.audio_tower.layers[-1].self_attn)
        self._fingerprint: str | None = None

    # ------------------------------------------------------------------ audio path

    @abstractmethod
    def _audio_features(
        self, waveforms: list[np.ndarray]
    ) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """The model's windows of a batch of clips, before the encoder.

        Returns input_features [W, 128, 3000], feature_mask [W, 3000] (1 = real mel frame), one
        row per window of every clip in order, and the number of windows of each clip.
        """

    @abstractmethod
    def _tower_forward(
        self, input_features: torch.Tensor, feature_mask: torch.Tensor
    ) -> torch.Tensor:
        """One audio-tower forward: [W', 128, 3000], [W', 3000] -> hidden [W', 750, D_audio]."""

    @property
    def min_samples(self) -> int:
        """The shortest clip with one audio token: the feature extractor marks ceil(T / hop) mel
        frames valid and the tower's conv + pooling need `f` of them (3 for Whisper-style: 321
        samples at hop 160, 20 ms); a window ≤ 20 ms past a multiple of 30 s gives no token."""
        frames = torch.arange(1, 64)
        tokens = self.model.model.audio_tower._get_feat_extract_output_lengths(frames)[1]
        f = int(frames[tokens >= 1][0])
        return (f - 1) * int(self.feature_extractor.hop_length) + 1

    def token_lengths(self, feature_mask: torch.Tensor) -> torch.Tensor:
        """feature_mask: [W, 3000] -> valid LLM tokens per window [W] long (the tower's formula)."""
        tower = self.model.model.audio_tower
        return tower._get_feat_extract_output_lengths(feature_mask.sum(-1).long())[1]

    @torch.inference_mode()
    def encode(
        self, waveforms: list[np.ndarray], needs: frozenset[str] = frozenset()
    ) -> list[EncodedAudio]:
        """Per clip one TokenWindow per model window, holding its L_w valid tokens.

        Per window: scores [L_w] float32 received attention; hidden [L_w, D_audio] encoder output
        before the projector, in the model dtype; keys [L_w, d] float32 when "keys" in needs;
        head_scores [H, L_w], head_max_scores [L_w], self_scores [L_w] float32 when named in
        needs (the scorer's same pass); projected [L_w, D_llm] (`project_tokens`) when
        "projected" in needs. All on CPU.
        """
        if not waveforms:
            return []
        for clip, wave in enumerate(waveforms):
            if len(wave) < self.min_samples:
                raise ValueError(
                    f"{type(self).__name__}.encode: clip {clip} ({len(wave)} samples) is too "
                    f"short to give one audio token; expected at least {self.min_samples} "
                    f"samples ({1000 * self.min_samples / self.sampling_rate:.3g} ms at "
                    f"{self.sampling_rate} Hz)"
                )
        features, mask, windows_per_clip = self._audio_features(waveforms)
        stats = frozenset(needs) & frozenset(attention_scores.OPTIONAL_STATS)
        hidden, scores, keys, extra = self._run_encoder(
            features, mask, keep_keys="keys" in needs, stats=stats
        )
        windows = [
            TokenWindow(
                scores=scores[w, :n].clone(),
                hidden=hidden[w, :n].clone(),
                keys=keys[w, :n].clone() if keys is not None else None,
                # [H, N] per head, [N] otherwise: the token axis is the last one
                **{name: value[w, ..., :n].clone() for name, value in extra.items()},
            )
            for w, n in enumerate(self.token_lengths(mask).tolist())
        ]
        starts = np.cumsum([0, *windows_per_clip]).tolist()
        clips = [EncodedAudio(windows=windows[a:b]) for a, b in zip(starts, starts[1:])]
        if "projected" in needs:
            clips = [complete_windows(self, clip, frozenset({"projected"})) for clip in clips]
        return clips

    def _run_encoder(
        self,
        input_features: torch.Tensor,
        feature_mask: torch.Tensor,
        keep_keys: bool = False,
        stats: frozenset[str] = frozenset(),
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, dict[str, torch.Tensor]]:
        """The hooked audio tower over all windows, `encoder_windows_per_forward` at a time.

        input_features: [W, 128, 3000]; feature_mask: [W, 3000]. Returns hidden
        [W, 750, D_audio] in the model dtype, scores [W, 750] float32, keys [W, 750, d]
        float32 or None, and the scorer's optional statistics named in `stats`
        ({"head_scores": [W, H, 750], "head_max_scores" / "self_scores": [W, 750]}), all on
        CPU. The scorer keeps the last forward's frame scores.
        """
        self.scorer.keep_keys = keep_keys
        self.scorer.stats = stats
        step = self.encoder_windows_per_forward or input_features.shape[0]
        hidden, scores, keys = [], [], []
        extra: dict[str, list[torch.Tensor]] = {name: [] for name in stats}
        for start in range(0, input_features.shape[0], step):
            self.scorer.reset()
            out = self._tower_forward(
                input_features[start : start + step].to(self.device, self.dtype),
                feature_mask[start : start + step].to(self.device),
            )
            hidden.append(out.cpu())
            scores.append(self.scorer.token_scores.cpu())
            if keep_keys:
                keys.append(self.scorer.token_keys.cpu())
            for name in stats:
                extra[name].append(self.scorer.token_stats[name].cpu())
        return (
            torch.cat(hidden),
            torch.cat(scores),
            torch.cat(keys) if keep_keys else None,
            {name: torch.cat(parts) for name, parts in extra.items()},
        )

    # ------------------------------------------------------------------ LLM path

    @abstractmethod
    def chat_messages(self, prompt: str) -> list[dict]:
        """The chat messages for one clip and one user text, with a single audio item."""

    @abstractmethod
    def _tokenize_prompts(self, prompts: list[str], audio: list[PrunedAudio]):
        """Tokenized chat prompts, left padded: row i has audio[i].kept audio placeholders.

        Returns a mapping with input_ids and attention_mask [B, S] (tensors on any device).
        """

    def chat_text(self, prompt: str) -> str:
        """The model's chat prompt for one clip and one user text, with a single audio slot."""
        text = self.processor.apply_chat_template(
            self.chat_messages(prompt), add_generation_prompt=True, tokenize=False
        )
        if text.count(self.audio_token) != 1:
            raise ValueError(
                f"{type(self).__name__}: the chat template of {self.pretrained!r} produced "
                f"{text.count(self.audio_token)} {self.audio_token} placeholders; "
                "expected exactly 1"
            )
        return text

    @torch.inference_mode()
    def prepare_inputs(
        self, prompts: list[str], audio: list[PrunedAudio], positions: str = "compact"
    ) -> dict[str, torch.Tensor]:
        """The LLM inputs of one batch, as `generate` feeds them to the stock `generate`.

        Returns input_ids, attention_mask [B, S] (left padded), inputs_embeds [B, S, H] with the
        projected kept tokens in the placeholder slots, and position_ids [B, S] when
        positions="original". Row i has audio[i].kept audio placeholders.
        """
        if len(prompts) != len(audio):
            raise ValueError(f"generate: {len(prompts)} prompts but {len(audio)} audio items")
        if positions not in POSITION_MODES:
            raise ValueError(
                f"generate: positions must be one of {', '.join(POSITION_MODES)}, got {positions!r}"
            )
        for i, item in enumerate(audio):
            if item.kept < 1:
                raise ValueError(f"generate: audio item {i} keeps no tokens; K must be >= 1")
        enc = self._tokenize_prompts(prompts, audio)
        input_ids = enc["input_ids"].to(self.device)
        attention_mask = enc["attention_mask"].to(self.device)
        inputs = {
            "input_ids": input_ids,
            "inputs_embeds": self._merge(input_ids, audio),
            "attention_mask": attention_mask,
        }
        if positions == "original":
            inputs["position_ids"] = original_positions(
                input_ids.cpu(), attention_mask.cpu(), self.audio_token_id, audio
            ).to(self.device)
        return inputs

    @torch.inference_mode()
    def generate(
        self,
        prompts: list[str],
        audio: list[PrunedAudio],
        max_new_tokens: int = 32,
        positions: str = "compact",
        llm_pruner=None,
        choices: list[list[str]] | None = None,
        **generation_kwargs,
    ) -> tuple[list[Generation], BatchTiming]:
        """Greedy by default; `generation_kwargs` go to the stock `generate` unchanged.

        llm_pruner: an in-LLM selector (`stage = "llm"`, e.g. fastv, dart) applied at its LLM
        layer through `audioprune.models.llm_pruning` (batch size 1); audio[0].llm_budget holds
        its budget groups. Its kept tokens go to Generation.extra.
        choices: per clip, choices to score by log-likelihood from generate's own prefill (its
        first-token logits and its KV cache cropped back to the prompt), as `score_choices`
        does, into Generation.choice_scores. Done for one clip without an in-LLM selector;
        otherwise choice_scores stays None (call `score_choices`).
        """
        if llm_pruner is not None and len(prompts) != 1:
            raise ValueError(
                f"in-LLM selector {llm_pruner.name!r} runs one clip per generate call, as its "
                f"original does; got a batch of {len(prompts)} (set batch_size=1)"
            )
        inputs = self.prepare_inputs(prompts, audio, positions)
        kwargs = dict(do_sample=False)
        if self.model.generation_config.pad_token_id is None:
            kwargs["pad_token_id"] = self.tokenizer.pad_token_id
        kwargs.update(generation_kwargs)
        share = choices is not None and llm_pruner is None and len(prompts) == 1
        if share:
            kwargs |= {"return_dict_in_generate": True, "output_logits": True}

        session = contextlib.nullcontext()
        if llm_pruner is not None:
            session = llm_pruning.session(
                self.model.model.language_model, llm_pruner, inputs, audio[0], self.audio_token_id
            )
        timer = PrefillTimer(self.model, self.device)
        reset_peak_memory(self.device)
        try:
            with session:
                # Our inputs (position_ids included) win over same-named generation_kwargs.
                out = self.model.generate(**{**kwargs, **inputs}, max_new_tokens=max_new_tokens)
            prefill_ms, decode_ms, steps = timer.result()
            peak_mb = peak_memory_mb(self.device)
        finally:
            timer.remove()
        sequences = out.sequences if hasattr(out, "sequences") else out
        new = sequences[:, inputs["input_ids"].shape[1] :].cpu()
        stop_ids = self._stop_ids()
        generations = []
        for row in range(new.shape[0]):
            ids = new[row].tolist()
            cut = next((j for j, t in enumerate(ids) if t in stop_ids), len(ids))
            ids = ids[:cut]
            generations.append(
                Generation(
                    text=self.tokenizer.decode(ids, skip_special_tokens=True).strip(),
                    token_ids=ids,
                    prompt_tokens=int(inputs["attention_mask"][row].sum()),
                )
            )
        if share:  # after the timer: these forwards are not decode steps
            generations[0].choice_scores = self._choices_from_generate(out, inputs, choices[0])
        flops_rows = [self.prefill_flops(g.prompt_tokens) for g in generations]
        if llm_pruner is not None:
            generations[0].extra = session.record(audio[0].window_sizes)
            flops_rows = [self.prefill_flops(generations[0].extra["llm_prefill_lengths"])]
        timing = BatchTiming(
            prefill_ms=prefill_ms,
            decode_ms_per_token=decode_ms,
            new_tokens=int(new.shape[1]),
            extra={
                "prefill_seq_len": timer.prefill_seq_len,
                "decode_steps": steps,
                "audio_tokens": [a.kept for a in audio],
                "audio_windows": [len(a.tokens) for a in audio],
                "positions": positions,
                # Per row, unpadded: what the row would cost alone (padding is batch overhead).
                "prefill_flops": flops_rows,
                "audio_flops": [self.audio_flops(len(a.window_sizes)) for a in audio],
                "peak_mem_mb": peak_mb,
            },
        )
        if positions == "original":
            timing.extra["prefill_position_ids"] = timer.prefill_position_ids.tolist()
        return generations, timing

    def _choices_from_generate(self, out, inputs: dict, options: list[str]) -> ChoiceScores:
        """Choice scores of one unpadded clip from a finished `generate` call's output."""
        length = inputs["input_ids"].shape[1]
        cache = out.cache
        extra = cache.get_seq_length() - length
        if extra > 0:
            cache.crop(-extra)  # drop the generated tokens: the prompt's cache alone
        if "position_ids" in inputs:
            prompt_pos = inputs["position_ids"][0]
        else:
            prompt_pos = torch.arange(length, device=self.device)
        conts = [self.choice_token_ids(c) for c in options]
        embedding = self.model.get_input_embeddings()
        logliks = self._logliks_on_cache(out.logits[0], cache, prompt_pos, conts, embedding)
        return ChoiceScores(logliks, [len(c) for c in conts])

    def choice_token_ids(self, choice: str) -> list[int]:
        """The tokens of one choice as the assistant's reply would start: the choice text alone
        (no special tokens), since the chat prompt ends at the start of the assistant turn."""
        ids = self.tokenizer(choice, add_special_tokens=False).input_ids
        if not ids:
            raise ValueError(f"choice scoring: choice {choice!r} has no tokens")
        return list(ids)

    @torch.inference_mode()
    def score_choices(
        self,
        prompts: list[str],
        audio: list[PrunedAudio],
        choices: list[list[str]],
        positions: str = "compact",
        llm_pruner=None,
    ) -> list[ChoiceScores]:
        """Per clip and choice: Σ log p(choice token | prompt, earlier choice tokens).

        The prompt rows are exactly what `generate` feeds the model (`prepare_inputs`: the same
        kept audio tokens in the same placeholders, the same positions); each choice's token
        embeddings follow them, at the positions `generate` would give its reply (last prompt
        position + 1, + 2, ...). Per clip, the whole model runs once over the prompt, then once
        over every choice's tokens on copies of its KV cache (rows right-padded); log-softmax
        in float32. With an in-LLM selector (fastv, dart) the prompt's forward runs under its
        hooks exactly as generate's prefill does (the selection happens there), and the choices
        run on the pruned cache as decode steps do; its kept tokens go to `extra`.
        """
        if len(choices) != len(prompts):
            raise ValueError(
                f"score_choices: {len(prompts)} prompts but {len(choices)} choice lists"
            )
        if llm_pruner is not None and len(prompts) != 1:
            raise ValueError(
                f"in-LLM selector {llm_pruner.name!r} scores one clip at a time; got a batch of "
                f"{len(prompts)} (set batch_size=1)"
            )
        inputs = self.prepare_inputs(prompts, audio, positions)
        embedding = self.model.get_input_embeddings()
        results = []
        for row, options in enumerate(choices):
            if not options:
                raise ValueError(f"score_choices: clip {row} has no choices")
            valid = inputs["attention_mask"][row].bool()
            prompt_ids = inputs["input_ids"][row][valid]
            prompt = inputs["inputs_embeds"][row][valid]  # [P, H]
            if "position_ids" in inputs:
                prompt_pos = inputs["position_ids"][row][valid]
            else:
                prompt_pos = torch.arange(prompt.shape[0], device=prompt.device)
            conts = [self.choice_token_ids(c) for c in options]
            if llm_pruner is None:
                logliks = self._continuation_logliks(prompt, prompt_pos, conts, embedding)
                results.append(ChoiceScores(logliks, [len(c) for c in conts]))
                continue
            # Under the hooks the prompt's forward is generate's prefill (the selection runs
            # there); the choices then run on its pruned KV cache like decode steps.
            hooks = llm_pruning.session(
                self.model.model.language_model,
                llm_pruner,
                {"input_ids": prompt_ids[None]},
                audio[row],
                self.audio_token_id,
            )
            with hooks:
                logliks = self._continuation_logliks(prompt, prompt_pos, conts, embedding)
            kept = hooks.record(audio[row].window_sizes)
            extra = {k: kept[k] for k in ("kept_tokens", "kept_per_window", "kept_indices")}
            results.append(ChoiceScores(logliks, [len(c) for c in conts], extra))
        return results

    def _continuation_logliks(
        self,
        prompt: torch.Tensor,
        prompt_pos: torch.Tensor,
        conts: list[list[int]],
        embedding: torch.nn.Module,
    ) -> list[float]:
        """prompt: [P, H] embeddings, prompt_pos: [P] positions; conts: C token lists. The
        prompt runs once, as generate's prefill (use_cache), then the choices on its KV cache
        (`_logliks_on_cache`). Returns C summed log-probs."""
        out = self.model(inputs_embeds=prompt[None], position_ids=prompt_pos[None], use_cache=True)
        return self._logliks_on_cache(out.logits[:, -1], out.cache, prompt_pos, conts, embedding)

    def _logliks_on_cache(
        self,
        first: torch.Tensor,
        cache,
        prompt_pos: torch.Tensor,
        conts: list[list[int]],
        embedding: torch.nn.Module,
    ) -> list[float]:
        """Summed log-probs of C continuations after a prompt whose forward already ran.

        first: [1, V] the logits after the prompt's last row (they predict every continuation's
        token 0); cache: that prompt forward's KV cache (batch 1, prompt length, changed in
        place); prompt_pos: [P] its positions. The continuations minus their last token run as
        C right-padded rows on the cache repeated C times.
        """
        length, longest, rows = prompt_pos.shape[0], max(len(c) for c in conts), len(conts)
        device = prompt_pos.device
        ids = torch.zeros(rows, longest, dtype=torch.long, device=device)
        for i, cont in enumerate(conts):
            ids[i, : len(cont)] = torch.tensor(cont, device=device)
        logits = first[:, None].to(device).expand(rows, -1, -1)  # [C, 1, V]
        if longest > 1:
            cache.batch_repeat_interleave(rows)
            mask = torch.ones(rows, length + longest - 1, dtype=torch.long, device=device)
            for i, cont in enumerate(conts):
                mask[i, length + len(cont) - 1 :] = 0  # right padding of shorter choices
            after = prompt_pos[-1] + 1 + torch.arange(longest - 1, device=device)
            weight = embedding.weight
            rest = self.model(
                inputs_embeds=embedding(ids[:, :-1]).to(weight.dtype),
                position_ids=after[None].expand(rows, -1),
                attention_mask=mask,
                cache=cache,
                use_cache=True,
            ).logits
            logits = torch.cat([logits, rest], 1)
        # logits[:, j] predicts continuation token j (log-softmax in float32).
        picked = logits.float().log_softmax(-1).gather(-1, ids[..., None])[..., 0]  # [C, longest]
        return [float(picked[i, : len(c)].sum()) for i, c in enumerate(conts)]

    def _merge(self, input_ids: torch.Tensor, audio: list[PrunedAudio]) -> torch.Tensor:
        """Text embeddings with the projected kept audio tokens in the placeholder slots.

        input_ids: [B, S]; returns [B, S, hidden] in the model dtype. The projector works token
        by token, so projecting only the kept rows equals projecting all and dropping the rest.
        masked_scatter fills the slots in row-major order: clip by clip, window by window, in
        time order within a window.
        """
        embeds = self.model.get_input_embeddings()(input_ids)
        # Tokens merged after the projector (PrunedAudio.space == "projected") go in as they are.
        projected = torch.cat(
            [
                t.to(embeds.device) if item.space == "projected" else self._project(t)
                for item in audio
                for t in item.tokens
            ]
        ).to(embeds.dtype)  # P11
        slots = input_ids == self.audio_token_id
        if int(slots.sum()) != projected.shape[0]:
            raise ValueError(
                f"{type(self).__name__}: {int(slots.sum())} audio placeholders but "
                f"{projected.shape[0]} kept audio tokens"
            )
        return embeds.masked_scatter(slots[..., None], projected)

    def _project(self, hidden: torch.Tensor) -> torch.Tensor:
        """The projector on encoder tokens [N, D_audio] -> [N, D_llm], on the model's device."""
        projector = self.model.model.multi_modal_projector
        weight = next(projector.parameters())
        return projector(hidden.to(weight.device, weight.dtype))

    @torch.inference_mode()
    def project_tokens(self, hidden: torch.Tensor) -> torch.Tensor:
        """Encoder tokens [N, D_audio] -> LLM input space [N, D_llm], model dtype, on the
        model's device (selection runs there)."""
        return self._project(hidden)

    @torch.inference_mode()
    def embed_text(self, text: str) -> torch.Tensor:
        """The LLM input embeddings of `text`'s tokens (no special tokens): [M, D_llm] on the
        model's device."""
        ids = self.tokenizer(text, add_special_tokens=False, return_tensors="pt").input_ids
        return self.model.get_input_embeddings()(ids.to(self.device))[0]

    def _stop_ids(self) -> set[int]:
        eos = self.model.generation_config.eos_token_id
        ids = set(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return ids

    # ------------------------------------------------------------------ analytic cost

    @property
    def logits_at_every_position(self) -> bool:
        """Whether the prefill applies the LM head at every prompt position.

        generate passes logits_to_keep=1 exactly when the model's forward accepts it (the rule
        of GenerationMixin._supports_logits_to_keep, transformers 5.23): AF3's does, Qwen2-Audio's
        does not, so it computes logits for the whole prompt (pitfall P12).
        """
        return "logits_to_keep" not in inspect.signature(self.model.forward).parameters

    def prefill_flops(self, seq_len: int | list[int], causal: bool = True) -> int:
        """Analytic FLOPs of one row's LLM prefill over seq_len prompt tokens (no padding).

        Decoder layers + LM head at every position or only the last (see
        `logits_at_every_position`); formula in `audioprune.flops.llm_prefill_breakdown`.
        A list gives the length each decoder layer runs on (in-LLM pruning: ρ_in of
        `audioprune.flops.llm_prefill_flops_per_layer`); the LM head sees the last one.
        """
        lengths = seq_len if isinstance(seq_len, list) else None
        last = lengths[-1] if lengths else seq_len
        logits = last if self.logits_at_every_position else min(1, last)
        config = self.model.config.text_config
        if lengths:
            return flops.llm_prefill_flops_per_layer(config, lengths, logits, causal)
        return flops.llm_prefill_flops(config, seq_len, logits, causal)

    def audio_flops(self, windows: int) -> int:
        """Analytic FLOPs of the audio path of a clip with `windows` windows: encoder + scoring.

        Every window is padded to max_source_positions frames (30 s), so the cost is per window
        whatever the clip length; formulas in `audioprune.flops`.
        """
        audio = self.model.config.audio_config
        return flops.audio_path_flops(audio, windows, frames=int(audio.max_source_positions))

    # ------------------------------------------------------------------ identity

    def audio_settings(self) -> str:
        """The audio-path settings that change encoder outputs, for the fingerprint."""
        fe = self.feature_extractor
        return (
            f"sr={fe.sampling_rate},mels={fe.feature_size},hop={fe.hop_length},"
            f"chunk={fe.chunk_length}s"
        )

    def fingerprint(self) -> str:
        """Weights (source, config hash, dtype, on-disk files or hub revision) + audio settings.

        Computed once: it identifies what was loaded, and the runner asks for it every batch.
        """
        if self._fingerprint is not None:
            return self._fingerprint
        self._fingerprint = adapter_fingerprint(
            self.name,
            self.pretrained,
            self.model,
            self.dtype,
            # v2: the chunked valid-frames pass of issue 11 (equal within 1e-6, but a near-tie
            # could rank differently, so encoder caches of the earlier scorer are not reused)
            f"{self.audio_settings()}|score=last_layer_received.v2",
        )
        return self._fingerprint
