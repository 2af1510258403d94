"""Audio Flamingo 3 adapter: scored audio encoding and generation from pruned audio tokens.

The seam with transformers (checked against 5.23, shared/notes/models-transformers.md §2) is AF3's
audio feature path, `AudioFlamingo3Model.get_audio_features` = audio tower (Whisper encoder,
AvgPool(2, 2), LayerNorm) then the multi-modal projector (Linear, GELU, Linear), split in two:
- the model and processor are the stock `AudioFlamingo3ForConditionalGeneration` and
  `AudioFlamingo3Processor` (no subclass, so checkpoint key renaming on load works: pitfall P1);
- `encode` runs the stock processor on each clip (its 30 s windows, up to `max_audio_len`, and its
  Whisper features), then the stock audio tower with the window mask it builds itself, with
  `LastLayerScorer` hooked on the last encoder self-attention; every layer keeps its sdpa kernel
  (P4). One `TokenWindow` per 30 s window holds the encoder rows before the projector;
- `generate` projects only the kept rows, window by window, writes them at `<sound>` placeholders
  whose count per clip is the kept count Σ_w K_w (placed by the processor's own expansion, so the
  token sequence is the stock one when nothing is pruned), and runs the stock `generate` on
  `input_ids` + `inputs_embeds`. The stock forward only merges audio when `input_features` is
  given, so the LLM prefill, attention mask and KV cache all have the pruned length (P7).
Budgets are per window (K_w = keep_count(N_w, r)); the runner applies them (P8).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import torch

from audioprune.models.base import (
    AudioLMAdapter,
    BatchTiming,
    EncodedAudio,
    Generation,
    PrunedAudio,
)
from audioprune.models.hooks import LastLayerScorer

# Device/dtype parsing, LLM timing and original-spacing positions are model independent; they
# live with the first adapter and are shared so that both models are timed the same way.
from audioprune.models.qwen2_audio import (
    Qwen2AudioAdapter,
    _PrefillTimer,
    resolve_device,
    resolve_dtype,
)
from audioprune.selectors.base import TokenWindow

log = logging.getLogger(__name__)

EXPECTED_CLASS = "AudioFlamingo3ForConditionalGeneration"
EXPECTED_MODEL_TYPE = "audioflamingo3"
POSITION_MODES = ("compact", "original")
# Windows per audio-tower forward: bounds activation memory for long clips and large batches
# (a 10 min clip is 20 windows). Windows are independent, so the split changes no result.
ENCODER_WINDOWS_PER_FORWARD = 16

# Qwen2.5's ChatML (AF3's LLM), for the tiny model only: the real checkpoint ships its own
# template with its processor, and the adapter always renders whatever template the processor
# carries. `<sound>` goes before the user text, as in AF3's prompts.
AF3_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}"
    "{{ message['content'] }}"
    "{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'audio' or 'audio' in content %}<sound>{% endif %}"
    "{% endfor %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'text' %}{{ content['text'] }}{% endif %}"
    "{% endfor %}"
    "{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
AF3_SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>", "<sound>")


def check_audio_flamingo3_model(model, source: str = "") -> None:
    """Raise TypeError unless `model` has the AF3 parts this adapter uses.

    Needs model.model.audio_tower.layers[-1].self_attn (the scoring layer, Whisper-style),
    model.model.audio_tower._get_feat_extract_output_lengths, model.model.multi_modal_projector
    (applied to the kept rows) and model.model.language_model (timed).
    """
    missing = []
    inner = getattr(model, "model", None)
    tower = getattr(inner, "audio_tower", None)
    for name, part in (
        ("model.audio_tower", tower),
        ("model.multi_modal_projector", getattr(inner, "multi_modal_projector", None)),
        ("model.language_model", getattr(inner, "language_model", None)),
    ):
        if part is None:
            missing.append(name)
    if tower is not None:
        if not hasattr(tower, "_get_feat_extract_output_lengths"):
            missing.append("model.audio_tower._get_feat_extract_output_lengths")
        try:
            attn = tower.layers[-1].self_attn
        except (AttributeError, IndexError, TypeError):
            missing.append("model.audio_tower.layers[-1].self_attn")
        else:
            missing += [
                f"...self_attn.{a}" for a in ("q_proj", "k_proj", "scaling") if not hasattr(attn, a)
            ]
    if missing:
        where = f" loaded from {source!r}" if source else ""
        raise TypeError(
            f"AudioFlamingo3Adapter: the model{where} is a {type(model).__name__}, which lacks "
            f"{', '.join(missing)}; expected a {EXPECTED_CLASS} with model.audio_tower.layers[-1]."
            "self_attn, model.multi_modal_projector and model.language_model"
        )


class AudioFlamingo3Adapter(AudioLMAdapter):
    """Audio Flamingo 3 behind the AudioLMAdapter interface.

    pretrained: hub id ("nvidia/audio-flamingo-3-hf") or local directory
    dtype: weights dtype ("float32", "bfloat16", "float16")
    device: "cpu", "cuda", "cuda:1", ... or "auto" (cuda when available)
    attn_implementation: attention kernel for every layer (the scorer never needs eager)
    build_tiny: tiny-model kind (see audioprune.models.tiny.TINY_BUILDERS) to build at
        `pretrained` first when that local path does not exist yet
    """

    name = "audio_flamingo_3"

    def __init__(
        self,
        pretrained: str,
        dtype: str = "float32",
        device: str = "cpu",
        attn_implementation: str = "sdpa",
        build_tiny: str | None = None,
    ):
        from transformers import AudioFlamingo3ForConditionalGeneration, AutoConfig, AutoProcessor

        self.pretrained = str(pretrained)
        if build_tiny and not (Path(self.pretrained) / "config.json").exists():
            from audioprune.models.tiny import ensure_tiny_model

            ensure_tiny_model(build_tiny, self.pretrained)
        self.dtype = resolve_dtype(dtype)
        self.device = resolve_device(device)
        self.attn_implementation = attn_implementation

        config = AutoConfig.from_pretrained(self.pretrained)
        if config.model_type != EXPECTED_MODEL_TYPE:
            found = ", ".join(getattr(config, "architectures", None) or []) or type(config).__name__
            raise TypeError(
                f"AudioFlamingo3Adapter: checkpoint {self.pretrained!r} holds a {found} "
                f"(model_type {config.model_type!r}); expected a {EXPECTED_CLASS} "
                f"(model_type {EXPECTED_MODEL_TYPE!r}) with model.audio_tower.layers[-1].self_attn "
                "and model.multi_modal_projector"
            )
        self.model = AudioFlamingo3ForConditionalGeneration.from_pretrained(
            self.pretrained, dtype=self.dtype, attn_implementation=attn_implementation
        )
        check_audio_flamingo3_model(self.model, self.pretrained)
        self.model.to(self.device).eval()
        self.processor = AutoProcessor.from_pretrained(self.pretrained)
        if not hasattr(self.processor, "max_audio_len"):
            raise TypeError(
                f"AudioFlamingo3Adapter: the processor of {self.pretrained!r} is a "
                f"{type(self.processor).__name__}; expected an AudioFlamingo3Processor"
            )
        self.tokenizer = self.processor.tokenizer
        self.feature_extractor = self.processor.feature_extractor
        self.sampling_rate = int(self.feature_extractor.sampling_rate)
        self.audio_token = self.processor.audio_token
        self.audio_token_id = int(self.model.config.audio_token_id)
        if self.tokenizer.convert_tokens_to_ids(self.audio_token) != self.audio_token_id:
            raise ValueError(
                f"AudioFlamingo3Adapter: tokenizer id of {self.audio_token!r} does not match the "
                f"model config's audio_token_id={self.audio_token_id} in {self.pretrained!r}"
            )
        self.scorer = LastLayerScorer(self.model.model.audio_tower.layers[-1].self_attn)
        self._fingerprint: str | None = None

    # ------------------------------------------------------------------ audio path

    def stock_windows(self, waveform: np.ndarray) -> tuple[torch.Tensor, torch.Tensor, int]:
        """The stock processor's 30 s windows of one clip.

        Returns input_features [W, 128, 3000], input_features_mask [W, 3000] (1 = real mel
        frame) and the number of `<sound>` placeholders the stock processor gives the clip.
        Clips longer than the processor's `max_audio_len` are truncated by it (with a warning).
        """
        out = self.processor(text=self.audio_token, audio=np.asarray(waveform, dtype=np.float32))
        placeholders = int((out["input_ids"] == self.audio_token_id).sum())
        return out["input_features"], out["input_features_mask"], placeholders

    @torch.inference_mode()
    def encode(
        self, waveforms: list[np.ndarray], needs: frozenset[str] = frozenset()
    ) -> list[EncodedAudio]:
        """Per clip one TokenWindow per 30 s window, holding its L_w valid tokens.

        A 45 s clip gives windows of 750 and 375 tokens. Per window: scores [L_w] float32
        received attention; hidden [L_w, D_audio] encoder output before the projector, in the
        model dtype; keys [L_w, d] float32 when "keys" in needs. All on CPU.
        """
        if not waveforms:
            return []
        features, masks, counts, placeholders = [], [], [], []
        for waveform in waveforms:
            feats, mask, expected = self.stock_windows(waveform)
            features.append(feats)
            masks.append(mask)
            counts.append(int(feats.shape[0]))
            placeholders.append(expected)
        hidden, scores, keys, token_lengths = self._run_encoder(
            torch.cat(features), torch.cat(masks), keep_keys="keys" in needs
        )
        out, row = [], 0
        for clip, (count, expected) in enumerate(zip(counts, placeholders)):
            windows = []
            for w in range(row, row + count):
                n = int(token_lengths[w])
                windows.append(
                    TokenWindow(
                        scores=scores[w, :n].clone(),
                        hidden=hidden[w, :n].clone(),
                        keys=keys[w, :n].clone() if keys is not None else None,
                    )
                )
            row += count
            encoded = EncodedAudio(windows=windows)
            # The processor counts placeholders from the clip's summed mel frames, the model
            # masks per window: they agree for AF3's windowing, and P8 needs them to.
            if encoded.num_tokens != expected:
                raise RuntimeError(
                    f"AudioFlamingo3Adapter: clip {clip} has {encoded.num_tokens} encoder tokens "
                    f"over {count} windows but the processor gives it {expected} placeholders"
                )
            out.append(encoded)
        return out

    def _run_encoder(
        self, input_features: torch.Tensor, feature_mask: torch.Tensor, keep_keys: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """The audio tower part of AudioFlamingo3Model.get_audio_features (5.23), hooked.

        input_features: [W, 128, 3000]; feature_mask: [W, 3000] (1 = real mel frame), one row
        per window of every clip. Returns hidden [W, 750, D_audio], scores [W, 750] float32,
        keys [W, 750, d] float32 or None (all on CPU) and valid LLM tokens per window [W].
        """
        tower = self.model.model.audio_tower
        _, token_lengths = tower._get_feat_extract_output_lengths(feature_mask.sum(-1).long())
        self.scorer.keep_keys = keep_keys
        hidden, scores, keys = [], [], []
        for start in range(0, input_features.shape[0], ENCODER_WINDOWS_PER_FORWARD):
            stop = start + ENCODER_WINDOWS_PER_FORWARD
            self.scorer.reset()
            # The tower builds its bidirectional mask from input_features_mask itself.
            out = tower(
                input_features[start:stop].to(self.device, self.dtype),
                input_features_mask=feature_mask[start:stop].to(self.device),
            )
            hidden.append(out.last_hidden_state.cpu())
            scores.append(self.scorer.token_scores.cpu())
            if keep_keys:
                keys.append(self.scorer.token_keys.cpu())
        self.scorer.reset()
        return (
            torch.cat(hidden),
            torch.cat(scores),
            torch.cat(keys) if keys else None,
            token_lengths,
        )

    # ------------------------------------------------------------------ LLM path

    def chat_text(self, prompt: str) -> str:
        """The model's chat prompt for one clip and one user text, with a single audio slot.

        Text before audio in the content list, as AF3's own `apply_transcription_request` does.
        """
        messages = [
            {"role": "user", "content": [{"type": "text", "text": prompt}, {"type": "audio"}]}
        ]
        text = self.processor.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )
        if text.count(self.audio_token) != 1:
            raise ValueError(
                f"AudioFlamingo3Adapter: the chat template of {self.pretrained!r} produced "
                f"{text.count(self.audio_token)} {self.audio_token} placeholders; expected exactly 1"
            )
        return text

    @torch.inference_mode()
    def prepare_inputs(
        self, prompts: list[str], audio: list[PrunedAudio], positions: str = "compact"
    ) -> dict[str, torch.Tensor]:
        """The LLM inputs of one batch, as `generate` feeds them to the stock `generate`.

        Returns input_ids, attention_mask [B, S] (left padded), inputs_embeds [B, S, H] with the
        projected kept tokens in the placeholder slots, and position_ids [B, S] when
        positions="original". Row i has audio[i].kept `<sound>` placeholders.
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
        # The processor's own placeholder expansion and tokenizer call, with the kept count in
        # place of the full one: unpruned, this is exactly `processor(text=..., audio=...)`.
        texts, _ = self.processor.get_text_with_replacements(
            [self.chat_text(p) for p in prompts],
            audio_replacements=[self.audio_token * item.kept for item in audio],
        )
        enc = self.tokenizer(texts, padding=True, padding_side="left", return_tensors="pt")
        input_ids = enc["input_ids"].to(self.device)
        attention_mask = enc["attention_mask"].to(self.device)
        inputs = {
            "input_ids": input_ids,
            "inputs_embeds": self._merge(input_ids, audio),
            "attention_mask": attention_mask,
        }
        if positions == "original":
            inputs["position_ids"] = Qwen2AudioAdapter.original_positions(
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
        **generation_kwargs,
    ) -> tuple[list[Generation], BatchTiming]:
        """Greedy by default; `generation_kwargs` go to the stock `generate` unchanged."""
        inputs = self.prepare_inputs(prompts, audio, positions)
        kwargs = dict(do_sample=False)
        if self.model.generation_config.pad_token_id is None:
            kwargs["pad_token_id"] = self.tokenizer.pad_token_id
        kwargs.update(generation_kwargs)

        timer = _PrefillTimer(self.model.model.language_model, self.device)
        try:
            out = self.model.generate(**inputs, max_new_tokens=max_new_tokens, **kwargs)
            prefill_ms, decode_ms, steps = timer.result()
        finally:
            timer.remove()
        sequences = out.sequences if hasattr(out, "sequences") else out
        prompt_len = inputs["input_ids"].shape[1]
        new = sequences[:, prompt_len:].cpu()
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
            },
        )
        if positions == "original":
            timing.extra["prefill_position_ids"] = timer.prefill_position_ids
        return generations, timing

    def _merge(self, input_ids: torch.Tensor, audio: list[PrunedAudio]) -> torch.Tensor:
        """Text embeddings with the projected kept audio tokens in the placeholder slots.

        input_ids: [B, S]; returns [B, S, hidden] in the model dtype. The projector works token
        by token, so projecting only the kept rows equals projecting all and dropping the rest.
        masked_scatter fills the slots in row-major order: clip by clip, window by window, in
        time order within a window.
        """
        embeds = self.model.get_input_embeddings()(input_ids)
        projector = self.model.model.multi_modal_projector
        weight = next(projector.parameters())
        tokens = torch.cat([t for item in audio for t in item.tokens], dim=0)
        projected = projector(tokens.to(weight.device, weight.dtype)).to(embeds.dtype)  # P11
        slots = input_ids == self.audio_token_id
        if int(slots.sum()) != projected.shape[0]:
            raise ValueError(
                f"AudioFlamingo3Adapter: {int(slots.sum())} audio placeholders but "
                f"{projected.shape[0]} kept audio tokens"
            )
        return embeds.masked_scatter(slots[..., None], projected)

    def _stop_ids(self) -> set[int]:
        eos = self.model.generation_config.eos_token_id
        ids = set(eos if isinstance(eos, (list, tuple)) else [eos] if eos is not None else [])
        if self.tokenizer.eos_token_id is not None:
            ids.add(self.tokenizer.eos_token_id)
        return ids

    # ------------------------------------------------------------------ identity

    def fingerprint(self) -> str:
        """Weights (source, config hash, dtype, on-disk files or hub revision) + audio settings."""
        if self._fingerprint is not None:
            return self._fingerprint
        config_hash = hashlib.sha1(self.model.config.to_json_string().encode()).hexdigest()[:12]
        source = self.pretrained
        local = Path(self.pretrained)
        if local.is_dir():
            stamp = [
                f"{p.name}:{p.stat().st_size}:{int(p.stat().st_mtime)}"
                for p in sorted(local.glob("*.safetensors"))
            ]
            source = f"{local.resolve()}[{','.join(stamp)}]"
        revision = getattr(self.model.config, "_commit_hash", None)
        fe = self.feature_extractor
        audio = (
            f"sr={fe.sampling_rate},mels={fe.feature_size},hop={fe.hop_length},"
            f"chunk={fe.chunk_length}s,max_audio_len={self.processor.max_audio_len}s"
        )
        self._fingerprint = (
            f"{self.name}|{source}|rev={revision}|config={config_hash}|dtype={self.dtype}"
            f"|{audio}|score=last_layer_received"
        )
        return self._fingerprint


def build_tiny_audio_flamingo3(
    path: str | Path,
    seed: int = 0,
    *,
    audio_d_model: int = 256,
    audio_layers: int = 2,
    audio_heads: int = 4,
    audio_ffn: int = 1024,
    text_hidden: int = 256,
    text_layers: int = 2,
    text_heads: int = 4,
    text_kv_heads: int = 2,
    text_ffn: int = 512,
    max_source_positions: int = 1500,
    initializer_range: float = 0.15,
    audio_initializer_range: float = 0.1,
) -> Path:
    """Save a tiny random-weight AudioFlamingo3ForConditionalGeneration + AudioFlamingo3Processor.

    The directory loads back through `AudioFlamingo3ForConditionalGeneration.from_pretrained(path)`
    and `AutoProcessor.from_pretrained(path)`, exactly as "nvidia/audio-flamingo-3-hf" does.
    Weights depend only on `seed` and the sizes. Both init scales are above transformers'
    default 0.02: at 0.02 every clip decodes to one repeated token and the last-layer attention
    is flat (all scores ~1), which would make equality tests between code paths and selectors
    say little. The encoder's is lower than the LLM's (projector included) so that fp32 noise
    between sdpa and eager stays well below the scorer's 1e-5 check. Returns `path`.
    """
    from transformers import (
        AudioFlamingo3Config,
        AudioFlamingo3ForConditionalGeneration,
        AudioFlamingo3Processor,
        WhisperFeatureExtractor,
    )

    from audioprune.models.tiny import atomic_directory, build_tiny_tokenizer

    tokenizer = build_tiny_tokenizer(
        list(AF3_SPECIAL_TOKENS),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=AF3_CHAT_TEMPLATE,
    )
    # AF3's encoder takes 128 mel bins; Whisper's default of 80 would not fit (P9).
    processor = AudioFlamingo3Processor(
        feature_extractor=WhisperFeatureExtractor(feature_size=128),
        tokenizer=tokenizer,
        chat_template=AF3_CHAT_TEMPLATE,
    )
    config = AudioFlamingo3Config(
        audio_config={
            "model_type": "audioflamingo3_encoder",
            "num_mel_bins": 128,
            "hidden_size": audio_d_model,
            "num_hidden_layers": audio_layers,
            "num_attention_heads": audio_heads,
            "intermediate_size": audio_ffn,
            "max_source_positions": max_source_positions,
            "initializer_range": audio_initializer_range,
        },
        text_config={
            "model_type": "qwen2",
            "vocab_size": len(tokenizer),
            "hidden_size": text_hidden,
            "num_hidden_layers": text_layers,
            "num_attention_heads": text_heads,
            "num_key_value_heads": text_kv_heads,
            "intermediate_size": text_ffn,
            # Up to 20 windows x 750 tokens + text must fit.
            "max_position_embeddings": 32768,
            "pad_token_id": tokenizer.pad_token_id,
            "eos_token_id": tokenizer.eos_token_id,
            "bos_token_id": None,
            "tie_word_embeddings": False,
            "initializer_range": initializer_range,
        },
        audio_token_id=tokenizer.convert_tokens_to_ids("<sound>"),
    )
    torch.manual_seed(seed)
    model = AudioFlamingo3ForConditionalGeneration(config).eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.do_sample = False
    with atomic_directory(path) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
    return Path(path)
