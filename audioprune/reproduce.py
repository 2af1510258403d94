"""`make reproduce` (`python scripts/reproduce.py`, a thin wrapper of `main` here): run the paper's
experiments and write its tables next to the published numbers.

Each experiment is a Hydra multirun over configs/experiment/<name>.yaml, so a run that dies
resumes from its saved predictions when the command is repeated. Tables land in results/tables/
as Markdown: our value, the paper's value (results/paper_reference.csv, with its confidence
grade), and the relative change against our own unpruned run; beside each, LaTeX (booktabs) and
CSV. Figures (audioprune.figures: metric vs retention, relative drop, the S sweep, efficiency) go
to results/figures/ as PNG + PDF + the plotted values as CSV.

Real runs need the checkpoints (hub or local folders) and the datasets under $AUDIOPRUNE_DATA.
`--tiny` runs the same experiments on the tiny random-weight models and synthetic data, which only
checks the plumbing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from audioprune import figures
from audioprune.config import CONFIG_DIR
from audioprune.figures import Panel
from audioprune.tables import (
    SETTING_KEYS,
    ci_table,
    collect,
    find_runs,
    identity_json,
    latex_escape,
    lower_is_better,
    seed_means,
    to_latex,
    to_markdown,
)

REPO = Path(__file__).resolve().parents[1]  # the repository: results/ holds the reference CSVs
# experiment -> (paper table id in results/paper_reference.csv, model name)
EXPERIMENTS = {
    "paper_table1_audio_flamingo_3": ("table1", "audio_flamingo_3"),
    "paper_table2_qwen2_audio": ("table2", "qwen2_audio"),
    "paper_table3_ablation": ("table3", "audio_flamingo_3"),
    "paper_segments_sweep": (None, "audio_flamingo_3"),
    "paper_table4_efficiency": ("table4", "audio_flamingo_3"),
    "field_methods": (None, None),  # both models
    # second paper (arXiv 2504.01690), classifier family; reference claims: results/paper2_reference.csv
    "paper2_ast_audioset_eval": (None, "ast_audioset"),
    "paper2_ast_esc50": (None, "ast_audioset"),
    "paper2_ast_speech_commands_v2": (None, "ast_audioset"),
    "paper2_audiomae_esc50": (None, "audiomae_as2m"),
    "paper2_audiomae_voxceleb1": (None, "audiomae_as2m"),
    # The papers' questions on a trained miniature Qwen2-Audio (135 M parameters, CPU-sized) and
    # synthetic scenes: real model behaviour on synthetic tasks, not the paper's benchmarks.
    "mini_selectors": (None, "mini_qwen2_audio"),  # Tables 1-2 analogue
    "mini_random_seeds": (None, "mini_qwen2_audio"),
    "mini_ablation": (None, "mini_qwen2_audio"),  # Table 3 analogue
    "mini_segments_sweep": (None, "mini_qwen2_audio"),
    "mini_field_methods": (None, "mini_qwen2_audio"),
    "mini_budgets": (None, "mini_qwen2_audio"),
    "mini_positions": (None, "mini_qwen2_audio"),  # compact vs original positions
    "mini_pruneaware": (None, None),  # the pruning-aware projector and its control
}
TINY = {
    "qwen2_audio": "tiny_qwen2_audio",
    "audio_flamingo_3": "tiny_audio_flamingo_3",
    "ast_audioset": "tiny_ast_random",
    "audiomae_as2m": "tiny_audiomae",
    "mini_qwen2_audio": "tiny_qwen2_audio",
    "mini_qwen2_audio_pruneaware": "tiny_qwen2_audio",
    "mini_qwen2_audio_pruneaware_control": "tiny_qwen2_audio",
}
# The classifier experiments pin a checkpoint and the dataset's fbank; tiny runs use the tiny
# model's own (128 frames).
CLASSIFIER_TINY = {
    "tiny_ast_random": "tiny-ast-random",
    "tiny_audiomae": "tiny-audiomae-random",
}
TINY_DATASETS = {
    "clotho_v2": "synthetic_captions",
    "audiocaps": "synthetic_captions",
    "clotho_aqa": "synthetic_aqa",
    "clotho_aqa_non_binary": "synthetic_aqa",
    "mmau_test_mini": "synthetic_mmau",
    "esc50": "synthetic_classes",
    "speech_commands_v2": "synthetic_classes",
    "voxceleb1": "synthetic_classes",
    "audioset_eval": "synthetic_classes",
    "synthetic_scenes": "synthetic_scenes",  # already synthetic: fewer clips in --tiny
}


def experiment_overrides(name: str, results_dir: Path, tiny: bool, extra: list[str]) -> list[str]:
    """The Hydra multirun arguments of one experiment (the tiny variant swaps in the tiny models
    and synthetic datasets, 4 clips each, batches of 4).

    A replaced sweep list is quoted ('a,b'): one string value of the sweeper's parameter, which
    the sweeper then splits into jobs (unquoted, Hydra reads it as a sweep over its own config
    and refuses it).
    """
    overrides = [f"experiment={name}", f"paths.results_dir={results_dir}"]
    if tiny:
        _, model = EXPERIMENTS[name]
        sweep = _sweep_params(name)
        if "model" in sweep:
            # Several models may share one tiny stand-in: each tiny model runs once.
            tiny_models = ",".join(dict.fromkeys(TINY[m] for m in sweep["model"].split(",")))
            overrides.append(f"hydra.sweeper.params.model='{tiny_models}'")
        else:
            overrides.append(f"model={TINY[model]}")
        overrides.append("batch_size=4")
        if model and TINY[model] in CLASSIFIER_TINY:  # its own fbank; 5 synthetic clips per class
            overrides += [
                f"model.pretrained=${{paths.cache_dir}}/models/{CLASSIFIER_TINY[TINY[model]]}",
                "model.features.frames=128",
                "model.features.mean=-6.845978",
                "model.features.std=5.5654526",
                "++dataset.args.clips_per_class=5",
            ]
        if not any(e.lstrip("+").startswith("dataset.args.num_clips=") for e in extra):
            # `++`: the primary config of a dataset sweep keeps the recipe's real dataset,
            # which has no num_clips; each job's synthetic dataset does.
            overrides.append("++dataset.args.num_clips=4")
        if "dataset" in sweep:
            datasets = sorted({TINY_DATASETS[d] for d in sweep["dataset"].split(",")})
            overrides.append(f"hydra.sweeper.params.dataset='{','.join(datasets)}'")
        else:
            overrides.append(
                f"dataset={TINY_DATASETS.get(_default_dataset(name), 'synthetic_captions')}"
            )
    return overrides + list(extra)


overrides_for = experiment_overrides  # the name the overrides test uses


def run_experiment(name: str, results_dir: Path, tiny: bool, extra: list[str]) -> None:
    overrides = experiment_overrides(name, results_dir, tiny, extra)
    cmd = [sys.executable, "-m", "audioprune.run", "-m", *overrides]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)


def _experiment_yaml(name: str) -> dict:
    import yaml

    return yaml.safe_load((CONFIG_DIR / "experiment" / f"{name}.yaml").read_text())


def _sweep_params(name: str) -> dict:
    return ((_experiment_yaml(name).get("hydra") or {}).get("sweeper") or {}).get("params") or {}


def _default_dataset(name: str) -> str:
    for entry in _experiment_yaml(name).get("defaults", []):
        if isinstance(entry, dict) and "override /dataset" in entry:
            return entry["override /dataset"]
    return "clotho_v2"


def ours(
    frame: pd.DataFrame, model: str, dataset: str, selector: str, retention: float, column: str
):
    """Our value of `column` for one paper cell (tiny runs stand in via TINY_DATASETS), or None."""
    match = frame[
        frame["dataset"].isin([dataset, TINY_DATASETS.get(dataset)])
        & frame["model"].str.endswith(model)
        & (frame["selector"] == selector)
        & (frame["retention"].round(4) == round(retention, 4))
    ]
    if column not in match.columns or not len(match):
        return None
    value = match[column].iloc[0]
    return None if pd.isna(value) else value


def comparison_table(frame: pd.DataFrame, reference: pd.DataFrame, table: str, model: str) -> str:
    """Ours vs paper, one row per (selector, retention), one column group per dataset metric."""
    ref = reference[reference["table"] == table]
    lines = []
    for (dataset, metric), group in ref.groupby(["dataset", "metric"], sort=False):
        rows = []
        for rec in group.itertuples(index=False):
            cell = (frame, model, dataset, rec.selector, rec.retention)
            drop = ours(*cell, f"relative_drop.{metric}")
            rows.append(
                {
                    "selector": rec.selector,
                    "retention": rec.retention,
                    "ours": ours(*cell, metric),
                    "paper": rec.value,
                    "ours_rel_drop_%": None if drop is None else 100 * drop,
                    "paper_grade": rec.grade,
                }
            )
        lines += [f"### {dataset} — {metric}", "", to_markdown(pd.DataFrame(rows)), ""]
    return "\n".join(lines)


PAPER_SELECTORS = {"none": "Original", "topk": "Top-K", "visionzip": "VisionZip", "segmentwise_topk": "Segmentwise Top-K", "random": "Random", "bottomk": "Bottom-K"}  # fmt: skip


def paper_layout_frame(
    frame: pd.DataFrame, reference: pd.DataFrame, table: str, model: str
) -> pd.DataFrame:
    """The paper's own layout as numbers: one row per method × keep; per paper column our value
    (`<dataset> <metric>`), the published one (`... (paper)`) and our relative drop against our
    unpruned run (`... (ours rel. drop %)`)."""
    ref = reference[reference["table"] == table]
    columns = list(dict.fromkeys(zip(ref["dataset"], ref["metric"])))
    rows = []
    for (selector, retention), group in ref.groupby(["selector", "retention"], sort=False):
        row = {
            "method": PAPER_SELECTORS.get(selector, selector),
            "keep": f"{retention:.0%}",
            "selector": selector,
            "retention": retention,
        }
        for dataset, metric in columns:
            paper = group[(group["dataset"] == dataset) & (group["metric"] == metric)]["value"]
            row[f"{dataset} {metric}"] = ours(frame, model, dataset, selector, retention, metric)
            row[f"{dataset} {metric} (paper)"] = paper.iloc[0] if len(paper) else None
            drop = ours(frame, model, dataset, selector, retention, f"relative_drop.{metric}")
            row[f"{dataset} {metric} (ours rel. drop %)"] = None if drop is None else 100 * drop
        rows.append(row)
    return pd.DataFrame(rows)


def _paper_columns(layout: pd.DataFrame) -> list[str]:
    return [c for c in layout.columns[4:] if not c.endswith(")")]


def _cell(value, digits: int = 2) -> str:
    return "–" if value is None or pd.isna(value) else f"{value:.{digits}f}"


def paper_layout(frame: pd.DataFrame, reference: pd.DataFrame, table: str, model: str) -> str:
    """The paper's own layout: one row per method × keep, one column per paper column, each cell
    `ours (paper)`. Accuracy columns are in percent, CIDEr-D on the 0-1 scale."""
    layout = paper_layout_frame(frame, reference, table, model)
    shown = layout[["method", "keep"]].copy()
    for column in _paper_columns(layout):
        shown[column] = [
            f"{_cell(a)} ({_cell(b)})" for a, b in zip(layout[column], layout[f"{column} (paper)"])
        ]
    return to_markdown(shown)


def paper_layout_latex(layout: pd.DataFrame, caption: str, label: str) -> str:
    """booktabs LaTeX of the paper layout, `ours (paper)` cells, rows in blocks of equal keep
    (largest first); in each block of two or more rows our best value per column is bold."""
    layout = layout.sort_values("retention", ascending=False, kind="stable").reset_index(drop=True)
    shown = layout[["method", "keep"]].map(latex_escape)
    for column in _paper_columns(layout):
        values = pd.to_numeric(layout[column], errors="coerce")
        best = pd.Series(False, index=layout.index)
        for _, block in values.groupby(layout["retention"]):
            block = block.dropna()
            if len(block) >= 2 and block.nunique() > 1:  # a block where all tie: nothing bold
                target = block.min() if lower_is_better(column) else block.max()
                best[block.index[block == target]] = True
        shown[column] = [
            (rf"\textbf{{{_cell(v)}}}" if b else _cell(v)).replace("–", "--") + f" ({_cell(p)})".replace("–", "--")
            for v, b, p in zip(values, best, layout[f"{column} (paper)"])
        ]  # fmt: skip
    blocks = layout["retention"].ne(layout["retention"].shift(-1))
    return to_latex(
        shown, caption=caption, label=label, escape=False,
        rules_after=[i for i, end in enumerate(blocks) if end],
    )  # fmt: skip


# experiment -> figures drawn from its runs (audioprune.figures); other families add theirs here.
FIGURES = {
    "paper_table1_audio_flamingo_3": ["metric_vs_retention", "relative_drop"],
    "paper_table2_qwen2_audio": ["metric_vs_retention", "relative_drop"],
    "paper_table3_ablation": ["metric_vs_retention", "relative_drop"],
    "paper_segments_sweep": ["segments_sweep"],
    "paper_table4_efficiency": ["efficiency"],
    "mini_selectors": ["metric_vs_retention"],
    "mini_ablation": ["metric_vs_retention"],
    "mini_segments_sweep": ["segments_sweep"],
}
# Metrics of experiments without a paper table: the headline columns, first present first.
SWEEP_METRICS = ["accuracy_choice_loglik", "sbert.overall", "overall", "sbert.speech", "cider_d", "accuracy"]  # fmt: skip


def _grid_values(spec) -> list:
    """A sweep value ("a,b", "range(2,16)", a scalar) as a list."""
    text = str(spec).strip()
    if text.startswith("range(") and text.endswith(")"):
        return list(range(*[int(v) for v in text[6:-1].split(",")]))
    return [yaml_scalar(v) for v in text.split(",")]


def yaml_scalar(text: str):
    import yaml

    return yaml.safe_load(text.strip())


def recipe_identities(name: str, tiny: bool = False, extra: Sequence[str] = ()) -> set[tuple]:
    """(model, dataset, dataset args, built_from, limit) of every model x dataset the recipe
    runs, as its run keys record them (`identity.dataset_config_identity`, `model_identity`):
    the recipe composed with the same overrides `main` runs it with (`--tiny`, extra ones).
    A run in the results folder on other clips (a held-out check of another seed or size),
    of other weights (a stale projector) or stopped at a `limit` the recipe does not set is
    then not one of the recipe's runs."""
    from audioprune.config import compose, plain
    from audioprune.identity import dataset_config_identity, model_identity

    base = [
        o
        for o in experiment_overrides(name, REPO / "results", tiny, list(extra))
        if not o.lstrip("+").startswith(("hydra.", "model=", "dataset=", "paths.results_dir="))
    ]
    sweep = _sweep_params(name)
    _, model = EXPERIMENTS[name]
    models = _grid_values(sweep["model"]) if "model" in sweep else [model]
    datasets = _grid_values(sweep["dataset"]) if "dataset" in sweep else [_default_dataset(name)]
    if tiny:
        models = list(dict.fromkeys(TINY[m] for m in models))
        datasets = sorted({TINY_DATASETS.get(d, "synthetic_captions") for d in datasets})
    found = set()
    for m in models:
        for d in datasets:
            cfg = compose([*base, f"model={m}", f"dataset={d}"])
            args = dataset_config_identity(cfg.dataset)["args"]
            built_from = model_identity(cfg.model).get("built_from")
            limit = plain(cfg).get("limit")
            found.add(
                (
                    cfg.model.name,
                    cfg.dataset.name,
                    identity_json(args),
                    identity_json(built_from),
                    limit,
                )
            )
    return found


def experiment_runs(
    frame: pd.DataFrame, name: str, identities: set[tuple] | None = None
) -> pd.DataFrame:
    """The runs of one experiment recipe: its model, tag, datasets (or their tiny stand-ins),
    selectors (+ the unpruned run), retentions and segments, so runs of other recipes that share
    the results folder (the S sweep, tagged timing runs) stay out of its tables and figures.
    With `identities` (`recipe_identities`), also only runs on the recipe's clips, of the
    current weights and without a `limit` it does not set (a run folder without an identity
    file is kept)."""
    if frame.empty:
        return frame
    spec = _experiment_yaml(name)
    sweep = _sweep_params(name)
    _, model = EXPERIMENTS[name]
    swept = _grid_values(sweep["model"]) if "model" in sweep else []  # model None: it sweeps them
    models = [m for x in ([model] if model else swept) for m in (x, TINY.get(x))]
    keep = frame["model"].map(lambda m: any(x and str(m).endswith(x) for x in models))
    tags = frame["tag"] if "tag" in frame else pd.Series(None, index=frame.index)
    keep &= tags.isna() if spec.get("tag") is None else tags.eq(spec["tag"])
    datasets = _grid_values(sweep["dataset"]) if "dataset" in sweep else [_default_dataset(name)]
    keep &= frame["dataset"].isin(datasets + [TINY_DATASETS.get(d) for d in datasets])
    selectors = _grid_values(sweep["selector"]) if "selector" in sweep else [_default(spec, "selector")]  # fmt: skip
    keep &= frame["selector"].isin([*selectors, "none"])
    retentions = _grid_values(sweep.get("retention", spec.get("retention", 0.25)))
    keep &= frame["retention"].round(4).isin([round(float(r), 4) for r in [*retentions, 1.0]])
    segments = _grid_values(sweep["selector.segments"]) if "selector.segments" in sweep else [_default_segments()]  # fmt: skip
    keep &= frame["segments"].isna() | frame["segments"].isin(segments)
    # Runs of the same cells under another scoring or budget policy belong to other recipes.
    if "scoring" in frame:
        keep &= frame["scoring"].fillna("generate").eq(spec.get("scoring") or "generate")
    if "budget" in frame and "budget" not in sweep:
        budget = _default(spec, "budget") or "per_window"
        keep &= frame["budget"].isna() | frame["budget"].eq(budget)
    if "positions" in frame:  # the unpruned run keeps every position whatever it says
        wanted = _grid_values(sweep["positions"]) if "positions" in sweep else [spec.get("positions") or "compact"]  # fmt: skip
        keep &= frame["positions"].fillna("compact").isin(wanted) | frame["selector"].eq("none")
    if identities is not None and "dataset_args" in frame:
        own = frame.apply(lambda row: _identity_tuple(row) in identities, axis=1)
        keep &= own | frame["dataset_args"].isna()
    return _one_version_per_cell(frame[keep], name)


def _identity_tuple(row: pd.Series) -> tuple:
    limit = row.get("limit")
    limit = None if limit is None or pd.isna(limit) else int(limit)
    built_from = row.get("built_from")
    built_from = None if built_from is None or pd.isna(built_from) else built_from
    return (row["model"], row["dataset"], row["dataset_args"], built_from, limit)


# What makes two runs one cell of a recipe's tables (beside the model and dataset).
CELL_KEYS = ("selector", *SETTING_KEYS, "seed", "retention")


def _one_version_per_cell(runs: pd.DataFrame, name: str) -> pd.DataFrame:
    """`runs`, refused when two of them are one table cell under different run keys (other
    model weights, other clips, other settings): a table would mix two versions."""
    cell = [c for c in ("model", "dataset", *CELL_KEYS) if c in runs.columns]
    clash = runs[runs.duplicated(cell, keep=False)]
    if clash.empty:
        return runs
    groups = clash.groupby(cell, dropna=False)["run_dir"].apply(lambda d: ", ".join(map(str, d)))
    raise ValueError(
        f"recipe {name}: runs of the same table cell with different run keys (other weights, "
        f"clips or settings) share the results folder: {'; '.join(groups)}. Move the "
        "version you do not want out of the folder (or use another --results-dir)"
    )


def _default_segments() -> int:
    """S of the shipped segmentwise_topk config (what the recipes run unless they sweep S)."""
    import yaml

    path = CONFIG_DIR / "selector" / "segmentwise_topk.yaml"
    return int(yaml.safe_load(path.read_text())["segments"])


def _default(spec: dict, group: str) -> str:
    for entry in spec.get("defaults", []):
        if isinstance(entry, dict) and f"override /{group}" in entry:
            return entry[f"override /{group}"]
    return ""


def experiment_panels(name: str, frame: pd.DataFrame, reference: pd.DataFrame) -> list[Panel]:
    """Panels of an experiment's figures: the paper table's columns, else its dataset's
    headline metrics that the runs have."""
    table, model = EXPERIMENTS[name]
    ref = reference[(reference["table"] == table) & (reference["model"] == model)]
    if len(ref):
        return [Panel(d, m) for d, m in dict.fromkeys(zip(ref["dataset"], ref["metric"]))]
    dataset = _default_dataset(name)
    if name.startswith("mini_"):  # both ways of answering, named (the y axis is accuracy %)
        return [Panel(dataset, m, label=how) for m, how in MINI_PANELS.items() if m in frame]
    return [Panel(dataset, m) for m in SWEEP_METRICS if m in frame.columns]


# The mini recipes' figure panels: metric column -> how the answer was read.
MINI_PANELS = {
    "accuracy_choice_loglik": "synthetic scenes, choice log-likelihood",
    "overall": "synthetic scenes, free reply",
}


def write_figures(
    name: str, frame: pd.DataFrame, reference: pd.DataFrame, out_dir: Path
) -> list[Path]:
    """Every figure of one experiment, from its runs: PNG + PDF + the plotted values as CSV."""
    table, model = EXPERIMENTS[name]
    ref = reference[(reference["table"] == table) & (reference["model"] == model)]
    panels = experiment_panels(name, frame, reference)
    paths = []
    for kind in FIGURES.get(name, []):
        if kind == "metric_vs_retention":
            fig, data = figures.metric_vs_retention(frame, panels, ref, aliases=TINY_DATASETS)
        elif kind == "relative_drop":
            fig, data = figures.metric_vs_retention(frame, panels, ref, aliases=TINY_DATASETS, relative=True)  # fmt: skip
        elif kind == "segments_sweep":
            fig, data = figures.segments_sweep(frame, panels, aliases=TINY_DATASETS)
        elif kind == "efficiency":
            fig, data = figures.efficiency(frame, ref, dataset=_default_dataset(name), aliases=TINY_DATASETS)  # fmt: skip
        else:
            raise ValueError(f"FIGURES[{name!r}]: unknown figure kind {kind!r}")
        stem = out_dir / (name if len(FIGURES[name]) == 1 else f"{name}_{kind}")
        paths += figures.save_figure(fig, stem, data)
    return paths


def write_latex_csv(
    name: str, mine: pd.DataFrame, reference: pd.DataFrame, out_dir: Path
) -> list[Path]:
    """LaTeX (booktabs) and CSV beside the Markdown: the paper layout when the experiment has a
    paper table (`<name>.tex`, `<name>.csv`), else its runs' headline columns; and every run
    (`<name>_runs.csv`)."""
    table, model = EXPERIMENTS[name]
    caption = f"{name.replace('_', ' ')}: ours (paper)"
    if table is not None and (reference["table"] == table).any():
        layout = paper_layout_frame(mine, reference, table, model)
        latex = paper_layout_latex(layout, caption + "; bold: our best per column at each keep", f"tab:{name}")  # fmt: skip
    else:
        metrics = [p.metric for p in experiment_panels(name, mine, reference)]
        columns = ["model", "dataset", "selector", "segments", "retention", "kept_tokens", *metrics]
        layout = mine[[c for c in columns if c in mine.columns]].dropna(axis=1, how="all")
        layout = layout.sort_values(
            [c for c in ("selector", "segments", "retention") if c in layout]
        )
        if "segments" in layout:
            layout["segments"] = layout["segments"].astype("Int64")
        layout = layout.reset_index(drop=True)
        bold = pd.DataFrame(False, index=layout.index, columns=layout.columns)
        pruned = layout["selector"] != "none" if "selector" in layout else bold.index >= 0
        for column in [m for m in metrics if m in layout]:
            values = pd.to_numeric(layout.loc[pruned, column], errors="coerce").dropna()
            if values.nunique() > 1:
                best = values.min() if lower_is_better(column) else values.max()
                bold.loc[values.index[values == best], column] = True
        latex = to_latex(
            layout, bold=bold, label=f"tab:{name}",
            caption=f"{name.replace('_', ' ')}: our runs; bold: best pruned run per column",
        )  # fmt: skip
    paths = [out_dir / f"{name}.tex", out_dir / f"{name}.csv", out_dir / f"{name}_runs.csv"]
    paths[0].write_text(latex)
    layout.to_csv(paths[1], index=False)
    mine.to_csv(paths[2], index=False)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--experiments", nargs="+", default=list(EXPERIMENTS), choices=list(EXPERIMENTS)
    )
    parser.add_argument("--results-dir", type=Path, default=REPO / "results")
    parser.add_argument(
        "--tiny", action="store_true", help="tiny models + synthetic data (plumbing check)"
    )
    parser.add_argument(
        "--tables-only", action="store_true", help="only rebuild tables from saved runs"
    )
    parser.add_argument("overrides", nargs="*", help="extra Hydra overrides for every experiment")
    args = parser.parse_args()

    # Each recipe's tables are written as soon as it finishes, so an interrupted run keeps the
    # tables of the recipes it completed (a repeated command resumes from saved predictions).
    for name in args.experiments:
        if not args.tables_only:
            try:
                run_experiment(name, args.results_dir, args.tiny, args.overrides)
            except subprocess.CalledProcessError as err:  # its one-line message is above
                raise SystemExit(
                    f"error: recipe {name} stopped (exit status {err.returncode}); the tables "
                    "of the recipes before it are written"
                ) from None
        # Only runs on the recipe's clips with the current weights enter the tables: those of
        # the real recipe and of its --tiny variant (tiny stand-ins are named apart), under the
        # extra overrides given here.
        own = {name: _own_identities(name, args.tiny, args.overrides)}
        written = write_tables(args.results_dir, [name], own)
        for path in written + write_extras(args.results_dir, [name], own):
            print(f"wrote {path}", flush=True)


def _own_identities(name: str, tiny: bool, extra: Sequence[str]) -> set[tuple]:
    """`recipe_identities` of the recipe and of its --tiny variant. A variant the extra overrides
    do not compose with (e.g. `dataset.args.num_clips=2`, which only the synthetic datasets
    have) made no runs under them and adds none; the variant this command ran must compose."""
    from hydra.errors import ConfigCompositionException

    found, errors = set(), []
    for variant in (True, False) if tiny else (False, True):
        try:
            found |= recipe_identities(name, variant, extra)
        except ConfigCompositionException as err:
            if variant == tiny:
                errors.append(err)
    if errors and not found:
        raise errors[0]
    return found


def write_tables(
    results_dir: Path, experiments: list[str], identities: dict[str, set[tuple]] | None = None
) -> list[Path]:
    """results_dir/tables/<experiment>.md from the runs under results_dir/runs (with
    `identities[name]`: only those runs, see `experiment_runs`)."""
    frame = collect(find_runs(results_dir))
    reference = pd.read_csv(REPO / "results" / "paper_reference.csv")
    out_dir = results_dir / "tables"
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in experiments:
        table, model = EXPERIMENTS[name]
        if frame.empty:
            break
        mine = experiment_runs(frame, name, (identities or {}).get(name))
        if mine.empty and table is None:  # no saved run and no paper table: nothing to show
            print(f"no saved runs of recipe {name} under {results_dir}: no table", flush=True)
            continue
        parts = [f"# {name}"]
        if name.startswith("paper2_"):  # the second paper published claims, not table cells
            claims = pd.read_csv(REPO / "results" / "paper2_reference.csv")
            parts += ["", "## The paper's published claims", "", to_markdown(claims)]
        shown = mine.drop(columns=["run_dir", "dataset_args", "built_from"], errors="ignore")
        all_runs = ["", "## All runs", "", to_markdown(shown)]
        if name.startswith("mini_"):
            parts += mini_sections(mine)
        if table is not None:
            parts += [
                "",
                "## The paper's layout: ours (paper)",
                "",
                paper_layout(mine, reference, table, model),
                "",
                "## Against the paper, per column",
                "",
                comparison_table(mine, reference, table, model),
            ]
        path = out_dir / f"{name}.md"
        path.write_text("\n".join(parts + all_runs) + "\n")
        written.append(path)
    return written


MINI_HEADING = (
    "Trained 135M-parameter audio LLM (miniature Qwen2-Audio: Whisper tiny.en encoder, "
    "SmolLM2-135M, trained projector) on synthetic tasks — real model behaviour, not the paper's "
    "benchmarks. Cells: value [95 % bootstrap interval over clips]."
)
TINY_HEADING = (
    "Tiny random-weight model (--tiny): checks the plumbing only, the numbers mean nothing. "
    "Cells: value [95 % bootstrap interval over clips]."
)
# label -> metric column of the mini recipes' headline table
MINI_METRICS = {
    "accuracy_choice_loglik %": "accuracy_choice_loglik",
    "free reply, official matcher %": "overall",
    "free reply, official_normalized %": "official_normalized.overall",
    "event coverage %": "event_coverage.overall",
}


def mini_sections(frame: pd.DataFrame) -> list[str]:
    """The mini recipes' tables: accuracy with 95 % CIs and event coverage per run, the same per
    question family, and random's mean over seeds."""
    if frame.empty:
        return []
    metrics = {k: v for k, v in MINI_METRICS.items() if v in frame.columns}
    trained = frame["model"].str.startswith("mini_qwen2_audio").all()
    heading = MINI_HEADING if trained else TINY_HEADING
    parts = ["", "## Accuracy and event coverage", "", heading, ""]
    parts += [to_markdown(ci_table(frame, metrics, keys=MINI_KEYS))]
    prefix = "accuracy_choice_loglik_by_task."
    families = sorted(c[len(prefix) :] for c in frame.columns if c.startswith(prefix))
    if families:
        per_family = {f: f"{prefix}{f}" for f in families}
        parts += ["", "## Choice log-likelihood accuracy per question family", "", heading, ""]
        parts += [to_markdown(ci_table(frame, per_family, keys=MINI_KEYS))]
        coverage = {f: f"event_coverage.by_group.{f}" for f in families}
        if any(c in frame.columns for c in coverage.values()):
            parts += ["", "## Event coverage per question family (%)", ""]
            parts += [to_markdown(ci_table(frame, coverage, keys=MINI_KEYS))]
    means = seed_means(frame, list(metrics.values()))
    if len(means) and (means["seeds"] > 1).any():
        parts += ["", "## Random selector: mean over seeds (min, max)", ""]
        parts += [to_markdown(means, digits=1)]
    return parts


MINI_KEYS = ("selector", "model", "seed", "segments", "budget", "positions", "retention")


def write_extras(
    results_dir: Path, experiments: list[str], identities: dict[str, set[tuple]] | None = None
) -> list[Path]:
    """LaTeX + CSV tables beside the Markdown, and the figures (results_dir/figures)."""
    frame = collect(find_runs(results_dir))
    if frame.empty:
        return []
    reference = pd.read_csv(REPO / "results" / "paper_reference.csv")
    written = []
    for name in experiments:
        mine = experiment_runs(frame, name, (identities or {}).get(name))
        if mine.empty and EXPERIMENTS[name][0] is None:
            continue
        written += write_latex_csv(name, mine, reference, results_dir / "tables")
        written += write_figures(name, mine, reference, results_dir / "figures")
    return written


if __name__ == "__main__":
    main()
