"""`make reproduce`: run the paper's experiments and write its tables next to the published numbers.

Each experiment is a Hydra multirun over configs/experiment/<name>.yaml, so a run that dies
resumes from its saved predictions when the command is repeated. Tables land in results/tables/
as Markdown: our value, the paper's value (results/paper_reference.csv, with its confidence
grade), and the relative change against our own unpruned run.

Real runs need the checkpoints (hub or local folders) and the datasets under $AUDIOPRUNE_DATA.
`--tiny` runs the same experiments on the tiny random-weight models and synthetic data, which only
checks the plumbing.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pandas as pd

from audioprune.tables import collect, find_runs, to_markdown

REPO = Path(__file__).resolve().parents[1]
# experiment -> (paper table id in results/paper_reference.csv, model name)
EXPERIMENTS = {
    "paper_table1_audio_flamingo_3": ("table1", "audio_flamingo_3"),
    "paper_table2_qwen2_audio": ("table2", "qwen2_audio"),
    "paper_table3_ablation": ("table3", "audio_flamingo_3"),
    "paper_segments_sweep": (None, "audio_flamingo_3"),
    "paper_table4_efficiency": (None, "audio_flamingo_3"),
    # second paper (arXiv 2504.01690), classifier family; reference claims: results/paper2_reference.csv
    "paper2_ast_audioset_eval": (None, "ast_audioset"),
    "paper2_ast_esc50": (None, "ast_audioset"),
    "paper2_ast_speech_commands_v2": (None, "ast_audioset"),
    "paper2_audiomae_esc50": (None, "audiomae_as2m"),
    "paper2_audiomae_voxceleb1": (None, "audiomae_as2m"),
}
TINY = {
    "qwen2_audio": "tiny_qwen2_audio",
    "audio_flamingo_3": "tiny_audio_flamingo_3",
    "ast_audioset": "tiny_ast_random",
    "audiomae_as2m": "tiny_audiomae",
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
}


def experiment_overrides(name: str, results_dir: Path, tiny: bool, extra: list[str]) -> list[str]:
    """The Hydra multirun arguments of one experiment (the tiny variant swaps in the tiny model
    and synthetic datasets, 4 clips each, batches of 4)."""
    overrides = [f"experiment={name}", f"paths.results_dir={results_dir}"]
    if tiny:
        _, model = EXPERIMENTS[name]
        overrides += [f"model={TINY[model]}", "batch_size=4"]
        if TINY[model] in CLASSIFIER_TINY:  # tiny model's own fbank; 5 synthetic clips per class
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
        sweep = _sweep_params(name)
        if "dataset" in sweep:
            datasets = sorted({TINY_DATASETS[d] for d in sweep["dataset"].split(",")})
            # Quoted: one string value of the sweeper's parameter, which the sweeper then
            # splits into jobs (unquoted, Hydra would read it as a sweep of the parameter).
            overrides.append(f"hydra.sweeper.params.dataset='{','.join(datasets)}'")
        else:
            overrides.append(
                f"dataset={TINY_DATASETS.get(_default_dataset(name), 'synthetic_captions')}"
            )
    return overrides + list(extra)


def run_experiment(name: str, results_dir: Path, tiny: bool, extra: list[str]) -> None:
    overrides = experiment_overrides(name, results_dir, tiny, extra)
    cmd = [sys.executable, "-m", "audioprune.run", "-m", *overrides]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=REPO)


def _experiment_yaml(name: str) -> dict:
    import yaml

    return yaml.safe_load((REPO / "configs" / "experiment" / f"{name}.yaml").read_text())


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


def paper_layout(frame: pd.DataFrame, reference: pd.DataFrame, table: str, model: str) -> str:
    """The paper's own layout: one row per method × keep, one column per paper column, each cell
    `ours (paper)`. Accuracy columns are in percent, CIDEr-D on the 0-1 scale."""
    ref = reference[reference["table"] == table]
    columns = list(dict.fromkeys(zip(ref["dataset"], ref["metric"])))
    rows = []
    for (selector, retention), group in ref.groupby(["selector", "retention"], sort=False):
        row = {"method": PAPER_SELECTORS.get(selector, selector), "keep": f"{retention:.0%}"}
        for dataset, metric in columns:
            paper = group[(group["dataset"] == dataset) & (group["metric"] == metric)]["value"]
            value = ours(frame, model, dataset, selector, retention, metric)
            ours_text = "–" if value is None else f"{value:.2f}"
            paper_text = f"{paper.iloc[0]:.2f}" if len(paper) else "–"
            row[f"{dataset} {metric}"] = f"{ours_text} ({paper_text})"
        rows.append(row)
    return to_markdown(pd.DataFrame(rows))


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

    if not args.tables_only:
        for name in args.experiments:
            run_experiment(name, args.results_dir, args.tiny, args.overrides)

    for path in write_tables(args.results_dir, args.experiments):
        print(f"wrote {path}")


def write_tables(results_dir: Path, experiments: list[str]) -> list[Path]:
    """results_dir/tables/<experiment>.md from the runs under results_dir/runs."""
    frame = collect(find_runs(results_dir))
    reference = pd.read_csv(REPO / "results" / "paper_reference.csv")
    out_dir = results_dir / "tables"
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for name in experiments:
        table, model = EXPERIMENTS[name]
        if frame.empty:
            break
        mine = frame[frame["model"].str.endswith(model) | (frame["model"] == TINY.get(model))]
        parts = [f"# {name}"]
        if name.startswith("paper2_"):  # the second paper published claims, not table cells
            claims = pd.read_csv(REPO / "results" / "paper2_reference.csv")
            parts += ["", "## The paper's published claims", "", to_markdown(claims)]
        all_runs = ["", "## All runs", "", to_markdown(mine.drop(columns=["run_dir"]))]
        if table is not None:
            parts += [
                "",
                "## The paper's layout: ours (paper)",
                "",
                paper_layout(frame, reference, table, model),
                "",
                "## Against the paper, per column",
                "",
                comparison_table(frame, reference, table, model),
            ]
        path = out_dir / f"{name}.md"
        path.write_text("\n".join(parts + all_runs) + "\n")
        written.append(path)
    return written


if __name__ == "__main__":
    main()
