"""scripts/average_projectors.py: the element-wise mean of projector files, refusing mismatches."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "average_projectors.py"


def _write(path: Path, weight: torch.Tensor, bias: torch.Tensor) -> Path:
    save_file({"linear.weight": weight, "linear.bias": bias}, str(path))
    return path


def test_average_is_the_elementwise_mean(tmp_path):
    main = runpy.run_path(str(SCRIPT))["main"]
    g = torch.Generator().manual_seed(0)
    w1, w2, w3 = (torch.randn(6, 4, generator=g) for _ in range(3))
    b1, b2, b3 = (torch.randn(6, generator=g) for _ in range(3))
    files = [
        _write(tmp_path / f"p{i}.safetensors", w, b)
        for i, (w, b) in enumerate([(w1, b1), (w2, b2), (w3, b3)])
    ]
    out = tmp_path / "out" / "mean.safetensors"
    main([*map(str, files[:2]), "--out", str(out)])
    got = load_file(str(out))
    torch.testing.assert_close(got["linear.weight"], (w1 + w2) / 2, rtol=0, atol=1e-7)
    torch.testing.assert_close(got["linear.bias"], (b1 + b2) / 2, rtol=0, atol=1e-7)
    main([*map(str, files), "--out", str(out)])
    torch.testing.assert_close(
        load_file(str(out))["linear.weight"], (w1 + w2 + w3) / 3, rtol=0, atol=1e-6
    )


def test_average_refuses_other_tensors_or_shapes(tmp_path):
    average = runpy.run_path(str(SCRIPT))["average"]
    a = _write(tmp_path / "a.safetensors", torch.zeros(6, 4), torch.zeros(6))
    wide = _write(tmp_path / "wide.safetensors", torch.zeros(6, 5), torch.zeros(6))
    with pytest.raises(
        ValueError, match=r"wide\.safetensors: linear\.weight is \(6, 5\).*expected \(6, 4\)"
    ):
        average([a, wide])
    other = tmp_path / "other.safetensors"
    save_file({"proj.weight": torch.zeros(6, 4)}, str(other))
    with pytest.raises(ValueError, match=r"other\.safetensors: tensors \['proj\.weight'\]"):
        average([a, other])
