"""Qwen2-Audio adapter: scored audio encoding and generation from pruned audio tokens.

The seam with transformers (checked against 5.23, shared/notes/models-transformers.md §1):
- the model is the stock `Qwen2AudioForConditionalGeneration` (no subclass, so checkpoint
  key renaming on load works: pitfall P1);
- `encode` repeats the audio part of `Qwen2AudioModel.forward` (feature lengths, the same
  `create_bidirectional_mask` call, `audio_tower`) with `LastLayerScorer` hooked on the last
  encoder self-attention; every layer keeps its sdpa kernel (P4);
- `generate` builds `inputs_embeds` itself: the chat prompt gets exactly K `<|AUDIO|>`
  placeholders, the projected kept tokens are scattered into them, and the stock `generate`
  runs on `input_ids` + `inputs_embeds`. The stock forward skips its own audio merge whenever
  `inputs_embeds` is given, so the legacy re-expansion path (P2) is never taken and the LLM
  prefill, attention mask and KV cache all have the pruned length (P7).
"""

from __future__ import annotations

import hashlib
import logging
import time
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
from audioprune.selectors.base import TokenWindow

log = logging.getLogger(__name__)

EXPECTED_CLASS = "Qwen2AudioForConditionalGeneration"
EXPECTED_MODEL_TYPE = "qwen2_audio"
# Attribute paths the adapter relies on, checked right after loading.
EXPECTED_PARTS = (
    "model.audio_tower.layers",
    "model.audio_tower._get_feat_extract_output_lengths",
    "model.multi_modal_projector",
    "model.language_model",
    "lm_head",
)
POSITION_MODES = ("compact", "original")
CHUNK_SECONDS = 30  # Qwen2-Audio's feature extractor pads/truncates every clip to 30 s (P9)


def resolve_device(device: str) -> torch.device:
    """ "auto" -> cuda when available, else cpu; anything else is passed to torch.device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """ "float32" / "bfloat16" / "float16" (or a torch.dtype) -> torch.dtype."""
    if isinstance(dtype, torch.dtype):
        return dtype
    value = getattr(torch, str(dtype), None)
    if not isinstance(value, torch.dtype):
        raise ValueError(
            f"model option `dtype` must name a torch dtype (float32, bfloat16, float16), got {dtype!r}"
        )
    return value


def _get_path(obj, dotted: str):
    for part in dotted.split("."):
        obj = getattr(obj, part)
    return obj


def check_qwen2_audio_model(model, source: str = "") -> None:
    """Raise TypeError unless `model` has the Qwen2-Audio parts this adapter uses."""
    missing = []
    for dotted in EXPECTED_PARTS:
        try:
            _get_path(model, dotted)
        except AttributeError:
            missing.append(dotted)
    if not missing:
        try:
            attn = model.model.audio_tower.layers[-1].self_attn
        except (AttributeError, IndexError, TypeError):
            missing.append("model.audio_tower.layers[-1].self_attn")
        else:
            missing += [
                f"...self_attn.{a}" for a in ("q_proj", "k_proj", "scaling") if not hasattr(attn, a)
            ]
    if missing:
        where = f" loaded from {source!r}" if source else ""
        raise TypeError(
            f"Qwen2AudioAdapter: the model{where} is a {type(model).__name__}, which lacks "
            f"{', '.join(missing)}; expected a {EXPECTED_CLASS} with model.audio_tower.layers[-1]."
            "self_attn, model.multi_modal_projector, model.language_model and lm_head"
        )


class _PrefillTimer:
    """Forward pre/post hooks on the language model: times each LLM forward of one generate call.

    The first forward consumes the whole prompt (prefill); later ones are decode steps. On CUDA
    the times come from events read after one synchronize, so the hooks never stall the GPU.
    """

    def __init__(self, module: torch.nn.Module, device: torch.device):
        self.cuda = device.type == "cuda"
        self.starts: list = []
        self.stops: list = []
        self.prefill_seq_len = 0
        self.prefill_position_ids: torch.Tensor | None = None
        self._handles = [
            module.register_forward_pre_hook(self._pre, with_kwargs=True),
            module.register_forward_hook(self._post),
        ]

    def _stamp(self):
        if self.cuda:
            event = torch.cuda.Event(enable_timing=True)
            event.record()
            return event
        return time.perf_counter()

    def _pre(self, module, args, kwargs):
        if not self.starts:
            embeds = kwargs.get("inputs_embeds")
            self.prefill_seq_len = int(embeds.shape[1]) if embeds is not None else 0
            pos = kwargs.get("position_ids")
            self.prefill_position_ids = pos.detach().cpu() if pos is not None else None
        self.starts.append(self._stamp())

    def _post(self, module, args, output):
        self.stops.append(self._stamp())

    def remove(self) -> None:
        for handle in self._handles:
            handle.remove()

    def _ms(self, a, b) -> float:
        return a.elapsed_time(b) if self.cuda else (b - a) * 1000.0

    def result(self) -> tuple[float, float, int]:
        """(prefill ms, decode ms per step, decode steps)."""
        if self.cuda:
            torch.cuda.synchronize()
        if not self.starts:
            return 0.0, 0.0, 0
        prefill = self._ms(self.starts[0], self.stops[0])
        steps = len(self.stops) - 1
        # From the end of the prefill forward to the end of the last decode forward: each step's
        # share includes sampling, lm_head and generate's bookkeeping, as a user would see it.
        decode = self._ms(self.stops[0], self.stops[-1]) / steps if steps > 0 else 0.0
        return prefill, decode, steps


class Qwen2AudioAdapter(AudioLMAdapter):
    """Qwen2-Audio(-Instruct) behind the AudioLMAdapter interface.

    pretrained: hub id (e.g. "Qwen/Qwen2-Audio-7B-Instruct") or local directory
    dtype: weights dtype ("float32", "bfloat16", "float16")
    device: "cpu", "cuda", "cuda:1", ... or "auto" (cuda when available)
    attn_implementation: attention kernel for every layer (the scorer never needs eager)
    build_tiny: tiny-model kind (see audioprune.models.tiny.TINY_BUILDERS) to build at
        `pretrained` first when that local path does not exist yet
    """

    name = "qwen2_audio"

    def __init__(
        self,
        pretrained: str,
        dtype: str = "float32",
        device: str = "cpu",
        attn_implementation: str = "sdpa",
        build_tiny: str | None = None,
    ):
        from transformers import AutoConfig, AutoProcessor, Qwen2AudioForConditionalGeneration

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
                f"Qwen2AudioAdapter: checkpoint {self.pretrained!r} holds a {found} "
                f"(model_type {config.model_type!r}); expected a {EXPECTED_CLASS} "
                f"(model_type {EXPECTED_MODEL_TYPE!r}) with model.audio_tower.layers[-1].self_attn, "
                "model.multi_modal_projector and model.language_model"
            )
        model = Qwen2AudioForConditionalGeneration.from_pretrained(
            self.pretrained,
            dtype=self.dtype,
            attn_implementation=attn_implementation,
            # Straight onto the GPU: a 7B model need not pass through host memory first.
            device_map=str(self.device) if self.device.type == "cuda" else None,
        )
        self._attach(model, AutoProcessor.from_pretrained(self.pretrained))

    @classmethod
    def from_model(cls, model, processor, label: str = "in-memory") -> Qwen2AudioAdapter:
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

    def _attach(self, model, processor) -> None:
        check_qwen2_audio_model(model, self.pretrained)
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
                f"Qwen2AudioAdapter: tokenizer id of {self.audio_token!r} does not match the model "
                f"config's audio_token_index={self.audio_token_id} in {self.pretrained!r}"
            )
        self.scorer = LastLayerScorer(model.model.audio_tower.layers[-1].self_attn)
        self._warned_truncation = False

    # ------------------------------------------------------------------ audio path

    @torch.inference_mode()
    def encode(
        self, waveforms: list[np.ndarray], needs: frozenset[str] = frozenset()
    ) -> list[EncodedAudio]:
        """Per clip one TokenWindow of its L valid tokens (L = 750 for 30 s, 250 for 10 s).

        scores: [L] float32 received attention; hidden: [L, D_audio] encoder output before the
        projector, in the model dtype; keys: [L, d] float32 when "keys" in needs. All on CPU.
        """
        if not waveforms:
            return []
        max_samples = CHUNK_SECONDS * self.sampling_rate
        if not self._warned_truncation and any(len(w) > max_samples for w in waveforms):
            log.warning(
                "Qwen2-Audio's feature extractor truncates audio to %d s; longer clips lose their tail",
                CHUNK_SECONDS,
            )
            self._warned_truncation = True
        features = self.feature_extractor(
            [np.asarray(w, dtype=np.float32) for w in waveforms],
            sampling_rate=self.sampling_rate,
            padding="max_length",
            return_attention_mask=True,
            return_tensors="pt",
        )
        hidden, frame_lengths, token_lengths = self._run_encoder(
            features["input_features"], features["attention_mask"], keep_keys="keys" in needs
        )
        scores = self.scorer.token_scores.cpu()
        keys = self.scorer.token_keys.cpu() if "keys" in needs else None
        hidden = hidden.cpu()
        out = []
        for i in range(len(waveforms)):
            n = int(token_lengths[i])
            if n < 1:
                raise ValueError(
                    f"Qwen2AudioAdapter.encode: clip {i} ({len(waveforms[i])} samples) is too "
                    "short to give one audio token; expected at least 0.03 s (480 samples at 16 kHz)"
                )
            window = TokenWindow(
                scores=scores[i, :n].clone(),
                hidden=hidden[i, :n].clone(),
                keys=keys[i, :n].clone() if keys is not None else None,
            )
            out.append(EncodedAudio(windows=[window]))
        return out

    def _run_encoder(
        self, input_features: torch.Tensor, feature_mask: torch.Tensor, keep_keys: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The audio part of Qwen2AudioModel.forward (5.23), hooked.

        input_features: [B, 128, 3000]; feature_mask: [B, 3000] (1 = real mel frame).
        returns hidden [B, 750, D_audio], valid encoder frames [B], valid LLM tokens [B].
        """
        from transformers.masking_utils import create_bidirectional_mask

        tower = self.model.model.audio_tower
        input_features = input_features.to(self.device, self.dtype)
        feature_mask = feature_mask.to(self.device)
        frame_lengths, token_lengths = tower._get_feat_extract_output_lengths(feature_mask.sum(-1))
        batch, _, mel_frames = input_features.shape
        frames = (mel_frames - 2) // 2 + 1
        valid = torch.arange(frames, device=self.device)[None, :] < frame_lengths[:, None]
        dummy = torch.zeros(batch, frames, 1, dtype=self.dtype, device=self.device)
        mask = create_bidirectional_mask(
            config=tower.config, inputs_embeds=dummy, attention_mask=valid.long()
        )
        self.scorer.keep_keys = keep_keys
        self.scorer.reset()
        hidden = tower(input_features, attention_mask=mask).last_hidden_state
        return hidden, frame_lengths, token_lengths

    # ------------------------------------------------------------------ LLM path

    def chat_text(self, prompt: str) -> str:
        """The model's chat prompt for one clip and one user text, with a single audio slot."""
        messages = [
            {
                "role": "user",
                "content": [
                    {"type": "audio", "audio_url": "clip"},
                    {"type": "text", "text": prompt},
                ],
            }
        ]
        return self.processor.apply_chat_template(
            messages, add_generation_prompt=True, tokenize=False
        )

    def _expand(self, text: str, kept: int) -> str:
        if text.count(self.audio_token) != 1:
            raise ValueError(
                f"Qwen2AudioAdapter: the chat template of {self.pretrained!r} produced "
                f"{text.count(self.audio_token)} {self.audio_token} placeholders; expected exactly 1"
            )
        return text.replace(self.audio_token, self.audio_token * kept)

    @staticmethod
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
            audio_pos = torch.cat(
                [idx.cpu().long() + off for idx, off in zip(kept.indices, offsets)]
            )
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
        if len(prompts) != len(audio):
            raise ValueError(f"generate: {len(prompts)} prompts but {len(audio)} audio items")
        if positions not in POSITION_MODES:
            raise ValueError(
                f"generate: positions must be one of {', '.join(POSITION_MODES)}, got {positions!r}"
            )
        for i, item in enumerate(audio):
            if item.kept < 1:
                raise ValueError(f"generate: audio item {i} keeps no tokens; K must be >= 1")
        texts = [self._expand(self.chat_text(p), a.kept) for p, a in zip(prompts, audio)]
        enc = self.tokenizer(texts, padding=True, return_tensors="pt", add_special_tokens=False)
        input_ids = enc["input_ids"].to(self.device)
        attention_mask = enc["attention_mask"].to(self.device)
        inputs_embeds = self._merge(input_ids, audio)

        kwargs = dict(do_sample=False)
        if self.model.generation_config.pad_token_id is None:
            kwargs["pad_token_id"] = self.tokenizer.pad_token_id
        kwargs.update(generation_kwargs)
        if positions == "original":
            kwargs["position_ids"] = self.original_positions(
                input_ids.cpu(), attention_mask.cpu(), self.audio_token_id, audio
            ).to(self.device)

        timer = _PrefillTimer(self.model.model.language_model, self.device)
        try:
            out = self.model.generate(
                input_ids=input_ids,
                inputs_embeds=inputs_embeds,
                attention_mask=attention_mask,
                max_new_tokens=max_new_tokens,
                **kwargs,
            )
            prefill_ms, decode_ms, steps = timer.result()
        finally:
            timer.remove()
        sequences = out.sequences if hasattr(out, "sequences") else out
        new = sequences[:, input_ids.shape[1] :].cpu()
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
                    prompt_tokens=int(attention_mask[row].sum()),
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
                "positions": positions,
            },
        )
        if positions == "original":
            timing.extra["prefill_position_ids"] = timer.prefill_position_ids.tolist()
        return generations, timing

    def _merge(self, input_ids: torch.Tensor, audio: list[PrunedAudio]) -> torch.Tensor:
        """Text embeddings with the projected kept audio tokens in the placeholder slots.

        input_ids: [B, S]; returns [B, S, hidden] in the model dtype. masked_scatter fills the
        slots in row-major order, i.e. clip by clip and in time order within a clip.
        """
        embeds = self.model.get_input_embeddings()(input_ids)
        projector = self.model.model.multi_modal_projector
        weight = next(projector.parameters())
        tokens = torch.cat([t for item in audio for t in item.tokens], dim=0)
        projected = projector(tokens.to(weight.device, weight.dtype)).to(embeds.dtype)  # P11
        slots = input_ids == self.audio_token_id
        if int(slots.sum()) != projected.shape[0]:
            raise ValueError(
                f"Qwen2AudioAdapter: {int(slots.sum())} audio placeholders but "
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
        audio = f"sr={fe.sampling_rate},mels={fe.feature_size},hop={fe.hop_length},chunk={fe.chunk_length}s"
        return (
            f"{self.name}|{source}|rev={revision}|config={config_hash}|dtype={self.dtype}"
            f"|{audio}|score=last_layer_received"
        )
