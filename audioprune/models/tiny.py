"""Tiny offline models: random-weight audio LMs that load through the real `from_pretrained` path.

They play the role of lm-evaluation-harness' dummy backend: tests and smoke runs exercise the
exact code path of a real checkpoint (config, processor, tokenizer, chat template, weights on
disk) without the hub. Every builder is deterministic (fixed seed, tokenizer trained on fixed
sentences) and writes atomically: the model is built in a temporary directory beside the target
and renamed into place, so a crash never leaves a half-written model behind.

Checked against transformers 5.23 (see docs/models-audio-llms.md, "Building the tiny models offline").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from audioprune.atomic import atomic_directory
from audioprune.errors import ConfigError
from audioprune.registry import Registry

# Sentences the tiny BPE is trained on. Their content only matters in that prompts written in
# English get split into a handful of multi-byte merges instead of single bytes.
TRAINING_SENTENCES: tuple[str, ...] = (
    "You are a helpful assistant.",
    "Describe the audio in one sentence.",
    "Generate the caption in English.",
    "What is the sound in this recording?",
    "Choose the correct answer from the choices below.",
    "A dog barks while a car passes by on a wet road.",
    "Birds are singing and water is running in the background.",
    "A man speaks, then a crowd applauds and cheers loudly.",
    "Music plays with drums, guitar and a female voice singing.",
    "Rain falls on a metal roof as thunder rumbles in the distance.",
    "Question: how many people are talking? Answer: two.",
    "The answer is yes. The answer is no. Option A, option B, option C, option D.",
    "0 1 2 3 4 5 6 7 8 9 10 100 1000",
)

# ChatML, the format of Qwen2-Audio-Instruct's own template (`Qwen2AudioProcessor.
# default_chat_template` in transformers 5.23): one "Audio n:" line per audio item.
QWEN2_AUDIO_CHAT_TEMPLATE = (
    "{% set audio_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}"
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n"
    "{% else %}"
    "{% for content in message['content'] %}"
    "{% if content['type'] == 'audio' or 'audio' in content or 'audio_url' in content %}"
    "{% set audio_count.value = audio_count.value + 1 %}"
    "Audio {{ audio_count.value }}: <|audio_bos|><|AUDIO|><|audio_eos|>\n"
    "{% elif 'text' in content %}"
    "{{ content['text'] }}"
    "{% endif %}"
    "{% endfor %}"
    "<|im_end|>\n"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

QWEN2_AUDIO_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|AUDIO|>",
    "<|audio_bos|>",
    "<|audio_eos|>",
)


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


def build_tiny_tokenizer(
    special_tokens: list[str],
    eos_token: str,
    pad_token: str,
    chat_template: str,
    vocab_size: int = 400,
    sentences: tuple[str, ...] = TRAINING_SENTENCES,
    **tokenizer_kwargs,
) -> PreTrainedTokenizerFast:
    """A deterministic byte-level BPE wrapped as a transformers fast tokenizer (padding_side="left").

    special_tokens: every special token the model uses (eos and pad included); they get the
        first ids, in this order, and are never split.
    eos_token, pad_token: which of them end a turn and pad a batch.
    chat_template: Jinja chat template stored with the tokenizer.
    vocab_size: target vocabulary of the BPE (bytes + specials + merges).
    tokenizer_kwargs: passed on to PreTrainedTokenizerFast (e.g. bos_token, unk_token).
    """
    for name, token in (("eos_token", eos_token), ("pad_token", pad_token)):
        if token not in special_tokens:
            raise ValueError(
                f"build_tiny_tokenizer: {name}={token!r} must be one of special_tokens {special_tokens}"
            )
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    core.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=1,
        special_tokens=list(special_tokens),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(list(sentences), trainer=trainer)
    extra = [t for t in special_tokens if t not in (eos_token, pad_token)]
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token=eos_token,
        pad_token=pad_token,
        extra_special_tokens=extra,
        padding_side="left",
        chat_template=chat_template,
        **tokenizer_kwargs,
    )


def save_tiny(model, processor, path: str | Path) -> Path:
    """Write `model` and `processor` to `path` atomically (see `atomic_directory`); returns it."""
    with atomic_directory(path, complete="config.json") as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
    return Path(path)


def _chatml_processor(processor_class, special_tokens: tuple[str, ...], chat_template: str):
    """`processor_class` over a tiny ChatML tokenizer and a 128-mel Whisper feature extractor.

    Both models' encoders take 128 mel bins; Whisper's default of 80 would not fit (P9).
    """
    from transformers import WhisperFeatureExtractor

    tokenizer = build_tiny_tokenizer(
        list(special_tokens),
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        chat_template=chat_template,
    )
    return processor_class(
        feature_extractor=WhisperFeatureExtractor(feature_size=128),
        tokenizer=tokenizer,
        chat_template=chat_template,
    )


@dataclass(frozen=True)
class TinySizes:
    """Sizes of a tiny Whisper-encoder + Qwen2-LLM audio model (defaults: the test models)."""

    audio_d_model: int = 256
    audio_layers: int = 2
    audio_heads: int = 4
    audio_ffn: int = 1024
    text_hidden: int = 256
    text_layers: int = 2
    text_heads: int = 4
    text_kv_heads: int = 2
    text_ffn: int = 512
    max_source_positions: int = 1500


def _qwen2_text_config(
    tokenizer,
    sizes: TinySizes,
    *,
    vocab_size: int,
    max_position_embeddings: int,
    initializer_range: float,
) -> dict:
    """The `text_config` of a tiny Qwen2 LLM (the LLM of both models), untied head, no BOS."""
    return {
        "model_type": "qwen2",
        "vocab_size": vocab_size,
        "hidden_size": sizes.text_hidden,
        "num_hidden_layers": sizes.text_layers,
        "num_attention_heads": sizes.text_heads,
        "num_key_value_heads": sizes.text_kv_heads,
        "intermediate_size": sizes.text_ffn,
        "max_position_embeddings": max_position_embeddings,
        "pad_token_id": tokenizer.pad_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "bos_token_id": None,
        "tie_word_embeddings": False,
        "initializer_range": initializer_range,
    }


def _greedy_generation(model, tokenizer) -> None:
    generation = model.generation_config
    generation.pad_token_id = tokenizer.pad_token_id
    generation.eos_token_id = tokenizer.eos_token_id
    generation.do_sample = False


def tiny_qwen2_audio(
    seed: int = 0,
    *,
    vocab_size: int | None = None,
    max_position_embeddings: int = 4096,
    init_std: float = 0.1,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    **sizes: int,
):
    """In-memory tiny Qwen2-Audio: (Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor).

    Weights depend only on `seed` and the sizes; the global torch RNG is left untouched.
    `init_std` is larger than the usual 0.02 so that the random LLM's greedy output depends on
    its input (at 0.02 it repeats one token whatever the audio), which makes equality tests bite.
    `vocab_size` (default: the tokenizer's) may exceed the tokenizer, to time a real-size LM
    head; `dtype` / `device` build the weights in place (a real-size model on a GPU in bf16).
    `sizes`: TinySizes fields (audio_layers=4, text_hidden=128, ...).
    """
    from transformers import (
        Qwen2AudioConfig,
        Qwen2AudioForConditionalGeneration,
        Qwen2AudioProcessor,
    )

    size = TinySizes(**sizes)
    processor = _chatml_processor(
        Qwen2AudioProcessor, QWEN2_AUDIO_SPECIAL_TOKENS, QWEN2_AUDIO_CHAT_TEMPLATE
    )
    tokenizer = processor.tokenizer
    config = Qwen2AudioConfig(
        audio_config={
            "model_type": "qwen2_audio_encoder",
            "num_mel_bins": 128,
            "d_model": size.audio_d_model,
            "encoder_layers": size.audio_layers,
            "encoder_attention_heads": size.audio_heads,
            "encoder_ffn_dim": size.audio_ffn,
            "max_source_positions": size.max_source_positions,
        },
        text_config=_qwen2_text_config(
            tokenizer,
            size,
            vocab_size=max(len(tokenizer), vocab_size or 0),
            max_position_embeddings=max_position_embeddings,
            initializer_range=init_std,
        ),
        audio_token_index=tokenizer.convert_tokens_to_ids("<|AUDIO|>"),
    )
    device = torch.device(device)
    cuda = [device.index or torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda), device:
        torch.manual_seed(seed)
        model = Qwen2AudioForConditionalGeneration._from_config(
            config, dtype=dtype, attn_implementation="sdpa"
        ).eval()
    _greedy_generation(model, tokenizer)
    return model, processor


def build_tiny_qwen2_audio(path: str | Path, seed: int = 0, **sizes) -> Path:
    """Save a tiny random-weight Qwen2-Audio (model + processor) at `path`; returns `path`.

    The directory loads back through `Qwen2AudioForConditionalGeneration.from_pretrained(path)`
    and `AutoProcessor.from_pretrained(path)`, exactly as "Qwen/Qwen2-Audio-7B-Instruct" does.
    `sizes`: keyword options of `tiny_qwen2_audio` (TinySizes fields, init_std, ...).
    """
    return save_tiny(*tiny_qwen2_audio(seed, **sizes), path)


def tiny_audio_flamingo3(
    seed: int = 0,
    *,
    initializer_range: float = 0.15,
    audio_initializer_range: float = 0.1,
    vocab_size: int | None = None,
    max_position_embeddings: int = 32768,
    dtype: torch.dtype = torch.float32,
    device: str | torch.device = "cpu",
    **sizes: int,
):
    """In-memory tiny AF3: (AudioFlamingo3ForConditionalGeneration, AudioFlamingo3Processor).

    Weights depend only on `seed` and the sizes; the global torch RNG is left untouched. Both
    init scales are above transformers' default 0.02: at 0.02 every clip decodes to one repeated
    token and the last-layer attention is flat (all scores ~1), which would make equality tests
    between code paths and selectors say little. The encoder's is lower than the LLM's
    (projector included) so that fp32 noise between sdpa and eager stays well below the
    scorer's 1e-5 check. `sizes`: TinySizes fields (audio_layers=0, text_hidden=128, ...).
    `vocab_size` (default: the tokenizer's) may exceed the tokenizer, to time a real-size LM
    head; `dtype` / `device` build the weights in place (a real-size model on a GPU in bf16).
    """
    from transformers import (
        AudioFlamingo3Config,
        AudioFlamingo3ForConditionalGeneration,
        AudioFlamingo3Processor,
    )

    size = TinySizes(**sizes)
    processor = _chatml_processor(AudioFlamingo3Processor, AF3_SPECIAL_TOKENS, AF3_CHAT_TEMPLATE)
    tokenizer = processor.tokenizer
    config = AudioFlamingo3Config(
        audio_config={
            "model_type": "audioflamingo3_encoder",
            "num_mel_bins": 128,
            "hidden_size": size.audio_d_model,
            "num_hidden_layers": size.audio_layers,
            "num_attention_heads": size.audio_heads,
            "intermediate_size": size.audio_ffn,
            "max_source_positions": size.max_source_positions,
            "initializer_range": audio_initializer_range,
        },
        text_config=_qwen2_text_config(
            tokenizer,
            size,
            vocab_size=max(len(tokenizer), vocab_size or 0),
            # Up to 20 windows x 750 tokens + text must fit.
            max_position_embeddings=max_position_embeddings,
            initializer_range=initializer_range,
        ),
        audio_token_id=tokenizer.convert_tokens_to_ids("<sound>"),
    )
    device = torch.device(device)
    cuda = [device.index or torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda), device:
        torch.manual_seed(seed)
        model = AudioFlamingo3ForConditionalGeneration._from_config(config, dtype=dtype).eval()
    _greedy_generation(model, tokenizer)
    return model, processor


def build_tiny_audio_flamingo3(path: str | Path, seed: int = 0, **sizes) -> Path:
    """Save a tiny random-weight AF3 (model + processor) at `path`; returns `path`.

    The directory loads back through `AudioFlamingo3ForConditionalGeneration.from_pretrained(path)`
    and `AutoProcessor.from_pretrained(path)`, exactly as "nvidia/audio-flamingo-3-hf" does.
    `sizes`: keyword options of `tiny_audio_flamingo3` (TinySizes fields, initializer_range, ...).
    """
    return save_tiny(*tiny_audio_flamingo3(seed, **sizes), path)


# kind -> builder(path, **build_args) -> Path (the model YAML's `build_tiny`; `build_args` only
# for BUILD_INPUTS kinds), imported on first use. A new tiny model is one line here plus its
# builder.
TINY_BUILDERS: Registry[Callable[[Path], Path]] = Registry(
    "tiny model kind", plural="kinds (model YAML field `build_tiny`)"
)
TINY_BUILDERS.register_lazy("qwen2_audio", "audioprune.models.tiny:build_tiny_qwen2_audio")
TINY_BUILDERS.register_lazy("audio_flamingo_3", "audioprune.models.tiny:build_tiny_audio_flamingo3")
TINY_BUILDERS.register_lazy(
    "mini_qwen2_audio", "audioprune.models.mini_alm:ensure_mini_qwen2_audio"
)
# Kinds whose builder checks its own freshness (a folder made from other inputs is rebuilt); it
# is called on every load. The others are built once, when the folder has no config.json.
CHECKED_BUILDERS = frozenset({"mini_qwen2_audio"})
# Kinds whose weights come from files shipped with the package, not from the config alone: what
# they are built from (`build_inputs(**build_args)`: builder version, sha256 of the files used)
# enters the run key (`audioprune.identity.model_identity`), so new shipped weights, or another
# file named in the model YAML's `build_args` (e.g. `projector:`), get new run folders.
BUILD_INPUTS: Registry[Callable[..., dict]] = Registry(
    "tiny model kind", plural="kinds built from shipped files"
)
BUILD_INPUTS.register_lazy("mini_qwen2_audio", "audioprune.models.mini_alm:build_inputs")


def _checked_build_args(kind: str | None, build_args: dict | None) -> dict:
    """`build_args` as keyword arguments; refused for a kind whose run key could not cover them
    (only BUILD_INPUTS kinds hash what their arguments point at)."""
    if not build_args:
        return {}
    if kind not in BUILD_INPUTS:
        raise ConfigError(
            f"model.build_args={dict(build_args)} is only for model kinds built from files "
            f"(model.build_tiny in {', '.join(sorted(BUILD_INPUTS))}), got build_tiny={kind!r}"
        )
    return {str(k): v for k, v in dict(build_args).items()}


def build_inputs(kind: str | None, build_args: dict | None = None) -> dict | None:
    """What a `build_tiny` kind is built from beyond its config (None for a kind built from the
    config alone: a seed and sizes); `build_args`: the model YAML's `build_args` (e.g. another
    projector file), refused for a kind that takes none."""
    args = _checked_build_args(kind, build_args)
    return BUILD_INPUTS.get(kind)(**args) if kind in BUILD_INPUTS else None


def ensure_tiny_model(kind: str, path: str | Path, build_args: dict | None = None) -> Path:
    """Build the tiny model `kind` at `path` unless a finished one is already there (for
    CHECKED_BUILDERS kinds: unless the one there was built from the same inputs, `build_args`
    included)."""
    target = Path(path)
    args = _checked_build_args(kind, build_args)
    if kind in CHECKED_BUILDERS:
        return TINY_BUILDERS.get(kind)(target, **args)
    if (target / "config.json").exists():
        return target
    TINY_BUILDERS.get(kind)(target)
    return target
