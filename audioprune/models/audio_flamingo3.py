"""Audio Flamingo 3 adapter: its 30 s windows, its encoder call and its chat prompt.

The seam with transformers (checked against 5.23, docs/models-audio-llms.md) is AF3's
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
Budgets are per window (K_w = keep_count(N_w, r)); the runner applies them (P8). Loading, scoring,
merging, timing and decoding are shared with the other Whisper-style adapters
(`audioprune.models.whisper_style.WhisperStyleAdapter`); the tiny AF3 is built in
`audioprune.models.tiny`.
"""

from __future__ import annotations

import numpy as np
import torch

from audioprune.models.base import PrunedAudio
from audioprune.models.whisper_style import WhisperStyleAdapter


class AudioFlamingo3Adapter(WhisperStyleAdapter):
    """Audio Flamingo 3 behind the AudioLMAdapter interface.

    pretrained: hub id ("nvidia/audio-flamingo-3-hf") or local directory; the other options are
    WhisperStyleAdapter's (dtype, device, attn_implementation, build_tiny).
    A clip gives one window per 30 s (a 45 s clip: windows of 750 and 375 tokens), up to the
    processor's `max_audio_len`.
    """

    name = "audio_flamingo_3"
    expected_class = "AudioFlamingo3ForConditionalGeneration"
    expected_model_type = "audioflamingo3"
    # Bounds activation memory for long clips and large batches (a 10 min clip is 20 windows).
    # Windows are independent, so the split changes no result.
    encoder_windows_per_forward = 16

    def _attach(self, model, processor) -> None:
        if not hasattr(processor, "max_audio_len"):
            raise TypeError(
                f"AudioFlamingo3Adapter: the processor of {self.pretrained!r} is a "
                f"{type(processor).__name__}; expected an AudioFlamingo3Processor"
            )
        super()._attach(model, processor)

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

    def _audio_features(
        self, waveforms: list[np.ndarray]
    ) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """The stock processor's windows of every clip, stacked."""
        features, masks, counts = [], [], []
        for clip, waveform in enumerate(waveforms):
            feats, mask, expected = self.stock_windows(waveform)
            tokens = int(self.token_lengths(mask).sum())
            # The processor counts placeholders from the clip's summed mel frames, the model
            # masks per window: they agree for AF3's windowing, and P8 needs them to.
            if tokens != expected:
                raise RuntimeError(
                    f"AudioFlamingo3Adapter: clip {clip} has {tokens} encoder tokens "
                    f"over {feats.shape[0]} windows but the processor gives it {expected} "
                    "placeholders"
                )
            features.append(feats)
            masks.append(mask)
            counts.append(int(feats.shape[0]))
        return torch.cat(features), torch.cat(masks), counts

    def _tower_forward(
        self, input_features: torch.Tensor, feature_mask: torch.Tensor
    ) -> torch.Tensor:
        """The audio tower part of AudioFlamingo3Model.get_audio_features (5.23): the tower builds
        its bidirectional mask from input_features_mask itself.

        input_features: [W, 128, 3000]; feature_mask: [W, 3000]; returns hidden [W, 750, D_audio].
        """
        tower = self.model.model.audio_tower
        return tower(input_features, input_features_mask=feature_mask).last_hidden_state

    # ------------------------------------------------------------------ LLM path

    def chat_messages(self, prompt: str) -> list[dict]:
        """Text before audio in the content list, as AF3's own `apply_transcription_request`."""
        return [{"role": "user", "content": [{"type": "text", "text": prompt}, {"type": "audio"}]}]

    def _tokenize_prompts(self, prompts: list[str], audio: list[PrunedAudio]):
        # The processor's own placeholder expansion and tokenizer call, with the kept count in
        # place of the full one: unpruned, this is exactly `processor(text=..., audio=...)`.
        texts, _ = self.processor.get_text_with_replacements(
            [self.chat_text(p) for p in prompts],
            audio_replacements=[self.audio_token * item.kept for item in audio],
        )
        return self.tokenizer(texts, padding=True, padding_side="left", return_tensors="pt")

    # ------------------------------------------------------------------ identity

    def audio_settings(self) -> str:
        return f"{super().audio_settings()},max_audio_len={self.processor.max_audio_len}s"
