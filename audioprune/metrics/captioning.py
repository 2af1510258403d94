"""Captioning metrics: CIDEr-D, BLEU-4, METEOR, ROUGE-L from pycocoevalcap (0-1 scale).

Everything goes through pycocoevalcap's `PTBTokenizer` first (lower-cases, splits and drops
punctuation tokens), exactly as the COCO / DCASE tooling does; notes §5.4 show that skipping it
moves CIDEr-D by ~0.1. pycocoevalcap's `Cider` class *is* CIDEr-D (clipped counts, Gaussian
length penalty sigma=6, x10). Its IDF comes from the evaluated clips' references, so scores are
only comparable on the same fixed clip list: clips without a prediction stay in the reference
set with an empty caption (they score 0) and are reported as missing.

The PTB tokenizer and METEOR run Java; without it `JavaNotFoundError` says how to install it.
SPICE (and so SPIDEr) needs Stanford CoreNLP 3.6.0 jars that cannot be fetched offline.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile

from audioprune.errors import InputError
from audioprune.records import Sample

log = logging.getLogger(__name__)

METRICS = ("cider_d", "bleu_4", "meteor", "rouge_l")
UNAVAILABLE = {
    "spice": "SPICE needs stanford-corenlp-3.6.0(.jar, -models.jar) in pycocoevalcap/spice/lib, "
    "which pycocoevalcap tries to download at construction",
    "spider": "SPIDEr is the mean of CIDEr-D and SPICE; SPICE is unavailable offline",
}
JAVA_NEEDED = (
    "captioning metrics need Java (pycocoevalcap's PTB tokenizer and METEOR are Java programs)"
)
JAVA_INSTALL = (
    "Install a Java runtime (8 or newer; 17 is tested), e.g. "
    "`sudo apt-get install openjdk-17-jre-headless` (Debian/Ubuntu), "
    "`conda install -c conda-forge openjdk=17`, or `brew install openjdk@17` (macOS), "
    "then check that `java -version` works."
)
JAVA_HELP = f"{JAVA_NEEDED} but no `java` executable is on PATH. {JAVA_INSTALL}"
# Characters the Java tokenizer treats as line breaks would shift every later caption.
_LINE_BREAKS = str.maketrans({c: " " for c in "\r\n\x0b\x0c\x85\u2028\u2029"})


class JavaNotFoundError(RuntimeError, InputError):
    """No working `java` on PATH (absent, or `java -version` fails): the message says how to
    install one."""


_WORKING_JAVA: set[str] = set()


def require_java() -> str:
    """The path of a working `java` (its `java -version` exits 0; checked once per path)."""
    java = shutil.which("java")
    if java is None:
        raise JavaNotFoundError(JAVA_HELP)
    if java not in _WORKING_JAVA:
        try:
            proc = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=120)
            failure = (
                f"exited with status {proc.returncode}" + _last_line(proc.stderr or proc.stdout)
                if proc.returncode != 0
                else None
            )
        except (OSError, subprocess.TimeoutExpired) as err:
            failure = f"could not run ({type(err).__name__}: {err})"
        if failure:
            raise JavaNotFoundError(
                f"{JAVA_NEEDED} but `{java} -version` {failure}, so the `java` on PATH is broken. "
                f"{JAVA_INSTALL}"
            )
        _WORKING_JAVA.add(java)
    return java


def _last_line(text: str) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return f" ({lines[-1].strip()[:200]})" if lines else ""


@contextlib.contextmanager
def _captured_stderr_fd():
    """Redirect file descriptor 2 (where child processes such as the JVM write) to a temporary
    file; yields a list that holds the captured text after the block."""
    captured: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield captured
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            captured.append(tmp.read().decode("utf-8", "replace"))


_UNTOKENIZABLE = re.compile(r"Untokenizable: (.*?) \((U\+[0-9A-Fa-f]+)")


def check_metric_names(metrics: list[str] | tuple[str, ...]) -> list[str]:
    names = [str(m).lower() for m in metrics]
    for name in names:
        if name in UNAVAILABLE:
            raise ValueError(
                f"captioning metric {name!r} is unavailable offline: {UNAVAILABLE[name]}"
            )
        if name not in METRICS:
            raise ValueError(f"unknown captioning metric {name!r}; valid: {', '.join(METRICS)}")
    return names


def ptb_tokenize(captions: dict, report: dict | None = None) -> dict:
    """{key: [caption, ...]} -> {key: [tokenised caption, ...]} with pycocoevalcap's PTBTokenizer.

    The JVM's stderr (its warning about characters it cannot tokenize and drops — it names only
    the first of each call, the default `untokenizable=firstDelete` — and a speed line) is
    captured and summarised in one log line; `report["untokenizable"]` says whether it dropped
    any. A tokenizer that returns fewer lines than captions (a crashed JVM) raises with its stderr.
    """
    require_java()
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    prepared = {
        k: [{"caption": str(c).translate(_LINE_BREAKS)} for c in v] for k, v in captions.items()
    }
    with _captured_stderr_fd() as captured:
        tokenized = PTBTokenizer().tokenize(prepared)
    stderr = captured[0] if captured else ""
    dropped = _UNTOKENIZABLE.search(stderr)
    if report is not None:
        report["untokenizable"] = dropped is not None
    if dropped:
        log.info(
            "PTB tokenizer dropped untokenizable characters from the captions (first: %s); "
            "scores ignore them",
            dropped.group(2),
        )
    lost = [k for k, v in prepared.items() if len(tokenized.get(k, [])) != len(v)]
    if lost:
        raise JavaNotFoundError(
            f"the PTB tokenizer (Java) returned no tokens for {len(lost)} of {len(prepared)} "
            f"caption groups{_last_line(stderr)}; check that `java -version` works. {JAVA_INSTALL}"
        )
    return tokenized


def caption_scores(
    references: dict[str, list[str]],
    candidates: dict[str, str],
    metrics: list[str] | tuple[str, ...] = METRICS,
    report: dict | None = None,
) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Corpus and per-clip scores (`report` gets the PTB tokenizer's `untokenizable` flag).

    references: {clip: [R] raw captions}; candidates: {clip: raw caption} with the same keys.
    Returns ({metric: corpus score}, {clip: {metric: clip score}}). BLEU-4 is corpus-level BLEU
    (per-clip values are the clip's own BLEU-4); the others are means over clips.
    """
    names = check_metric_names(metrics)
    if set(references) != set(candidates):
        raise ValueError("references and candidates must have the same clip ids")
    if not references:
        raise ValueError("no clips to score")
    keys = list(references)
    # One tokenizer call (one JVM start) for references and candidates together.
    joined = {("ref", k): references[k] for k in keys} | {
        ("cand", k): [candidates[k]] for k in keys
    }
    tokenized = ptb_tokenize(joined, report)
    gts = {k: tokenized[("ref", k)] for k in keys}
    res = {k: tokenized[("cand", k)] for k in keys}

    corpus: dict[str, float] = {}
    per_clip: dict[str, dict[str, float]] = {k: {} for k in keys}
    # pycocoevalcap prints progress to stdout; keep stdout clean for the CLI's JSON.
    with contextlib.redirect_stdout(sys.stderr):
        for name in names:
            if name == "cider_d":
                from pycocoevalcap.cider.cider import Cider

                score, scores = Cider().compute_score(gts, res)
            elif name == "bleu_4":
                from pycocoevalcap.bleu.bleu import Bleu

                all_n, all_scores = Bleu(4).compute_score(gts, res, verbose=0)
                score, scores = all_n[3], all_scores[3]
            elif name == "rouge_l":
                from pycocoevalcap.rouge.rouge import Rouge

                score, scores = Rouge().compute_score(gts, res)
            else:  # meteor
                require_java()
                from pycocoevalcap.meteor.meteor import Meteor

                meteor = Meteor()
                try:
                    score, scores = meteor.compute_score(gts, res)
                finally:
                    meteor.meteor_p.stdin.close()
                    meteor.meteor_p.kill()
                    meteor.meteor_p.wait()
            corpus[name] = float(score)
            for k, value in zip(keys, scores):
                per_clip[k][name] = float(value)
    return corpus, per_clip


def score_captions(
    samples: list[Sample],
    predictions: dict[str, str],
    metrics: list[str] | tuple[str, ...] = METRICS,
) -> dict:
    """Corpus metrics over every sample (missing predictions score as empty captions), plus
    `n` (clips scored) and the missing predictions."""
    references, candidates, missing = {}, {}, []
    for sample in samples:
        if not sample.references:
            raise ValueError(f"sample {sample.id!r} has no reference captions")
        references[sample.id] = list(sample.references)
        prediction = predictions.get(sample.id)
        if prediction is None:
            missing.append(sample.id)
        candidates[sample.id] = "" if prediction is None else str(prediction)
    report: dict = {}
    corpus, _ = caption_scores(references, candidates, metrics, report)
    return corpus | {
        "n": len(samples),
        "ptb_untokenizable": report.get("untokenizable", False),
        "missing": len(missing),
        "missing_ids": missing,
        "references_per_clip": sorted({len(r) for r in references.values()}),
        "tokenizer": "pycocoevalcap PTBTokenizer",
    }
