"""Qwen2-Audio adapter: its 30 s window, its encoder call and its chat prompt.

The seam with transformers (checked against 5.23, docs/models-audio-llms.md):
- the model is the stock `Qwen2AudioForConditionalGeneration` (no subclass, so checkpoint
  key renaming on load works: pitfall P1);
- `encode` repeats the audio part of `Qwen2AudioModel.forward` (feature lengths, the same
  `create_bidirectional_mask` call, `audio_tower`) with `LastLayerScorer` hooked on the last
  encoder self-attention; every layer keeps its sdpa kernel (P4). One window per clip: the
  feature extractor pads or truncates every clip to 30 s (P9);
- `generate` builds `inputs_embeds` itself: the chat prompt gets exactly K `<|AUDIO|>`
  placeholders, the projected kept tokens are scattered into them, and the stock `generate`
  runs on `input_ids` + `inputs_embeds`. The stock forward skips its own audio merge whenever
  `inputs_embeds` is given, so the legacy re-expansion path (P2) is never taken and the LLM
  prefill, attention mask and KV cache all have the pruned length (P7).
Loading, scoring, merging, timing and decoding are shared with the other Whisper-style adapters
(`audioprune.models.whisper_style.WhisperStyleAdapter`).
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from audioprune.models.base import PrunedAudio
from audioprune.models.whisper_style import WhisperStyleAdapter, padded_features

log = logging.getLogger(__name__)

CHUNK_SECONDS = 30  # Qwen2-Audio's feature extractor pads/truncates every clip to 30 s (P9)


class Qwen2AudioAdapter(WhisperStyleAdapter):
    """Qwen2-Audio(-Instruct) behind the AudioLMAdapter interface.

    pretrained: hub id (e.g. "Qwen/Qwen2-Audio-7B-Instruct") or local directory; the other
    options are WhisperStyleAdapter's (dtype, device, attn_implementation, build_tiny).
    Every clip is one window of up to 750 tokens (L = 750 for 30 s, 250 for 10 s).
    """

    name = "qwen2_audio"
    expected_class = "Qwen2AudioForConditionalGeneration"
    expected_model_type = "qwen2_audio"
    _warned_truncation = False

    # ------------------------------------------------------------------ audio path

    def _audio_features(
        self, waveforms: list[np.ndarray]
    ) -> tuple[torch.Tensor, torch.Tensor, list[int]]:
        """The feature extractor on the whole batch: one 30 s window per clip."""
        max_samples = CHUNK_SECONDS * self.sampling_rate
        if not self._warned_truncation and any(len(w) > max_samples for w in waveforms):
            log.warning(
                "Qwen2-Audio's feature extractor truncates audio to %d s; longer clips lose their tail",
                CHUNK_SECONDS,
            )
            self._warned_truncation = True
        features = padded_features(self.feature_extractor, waveforms, self.sampling_rate)
        # Clips too short for one token were refused by `encode` (`min_samples`).
        return features["input_features"], features["attention_mask"], [1] * len(waveforms)

    def _tower_forward(
        self, input_features: torch.Tensor, feature_mask: torch.Tensor
    ) -> torch.Tensor:
        """The audio part of Qwen2AudioModel.forward (5.23): the tower does not mask padding by
        itself, so the 4-D bidirectional mask is built here the way the stock forward builds it.

        input_features: [B, 128, 3000]; feature_mask: [B, 3000]; returns hidden [B, 750, D_audio].
        """
        from transformers.masking_utils import create_bidirectional_mask

        tower = self.model.model.audio_tower
        frame_lengths, _ = tower._get_feat_extract_output_lengths(feature_mask.sum(-1))
        batch, _, mel_frames = input_features.shape
        frames = (mel_frames - 2) // 2 + 1
        valid = torch.arange(frames, device=self.device)[None, :] < frame_lengths[:, None]
        dummy = torch.zeros(batch, frames, 1, dtype=self.dtype, device=self.device)
        mask = create_bidirectional_mask(
            config=tower.config, inputs_embeds=dummy, attention_mask=valid.long()
        )
        return tower(input_features, attention_mask=mask).last_hidden_state

    # ------------------------------------------------------------------ LLM path

    def chat_messages(self, prompt: str) -> list[dict]:
        """Audio first, then the user text, as in Qwen2-Audio-Instruct's examples."""
        return [
            {
                "role": "user",
                "content": [
                    {"type": "audio", "audio_url": "clip"},
                    {"type": "text", "text": prompt},
                ],
            }
        ]

    def _tokenize_prompts(self, prompts: list[str], audio: list[PrunedAudio]):
        # The template already holds every special token, so the tokenizer adds none.
        texts = [
            self.chat_text(p).replace(self.audio_token, self.audio_token * a.kept)
            for p, a in zip(prompts, audio)
        ]
        return self.tokenizer(texts, padding=True, return_tensors="pt", add_special_tokens=False)
