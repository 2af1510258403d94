"""`scripts/reproduce.py --tiny` (issue 9 item 17): every experiment recipe's command expands,
with Hydra's own sweeper steps, to the full grid of tiny jobs, each job composes, and one job per
recipe runs end to end into its table. (tests/test_scripts.py runs one recipe through the real
command line.)"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import pytest

from audioprune import runner
from audioprune.config import CONFIG_DIR, compose

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
from audioprune import reproduce  # noqa: E402  (the logic of scripts/reproduce.py)

# recipe -> (number of jobs of its tiny sweep, the dataset of the job run here)
GRID = {
    "paper_table1_audio_flamingo_3": (3 * 4 * 3, "synthetic_mmau"),
    "paper_table2_qwen2_audio": (3 * 4 * 3, "synthetic_mmau"),
    "paper_table3_ablation": (4 * 3, "synthetic_captions"),
    "paper_segments_sweep": (14, "synthetic_mmau"),
    "paper_table4_efficiency": (2 * 3, "synthetic_captions"),
    # 2 models x 3 synthetic stand-ins x 18 methods x 3 retentions
    "field_methods": (2 * 3 * 18 * 3, "synthetic_mmau"),
    "paper2_ast_audioset_eval": (6 * 5, "synthetic_classes"),
    "paper2_ast_esc50": (6 * 5, "synthetic_classes"),
    "paper2_ast_speech_commands_v2": (6 * 5, "synthetic_classes"),
    "paper2_audiomae_esc50": (6 * 5, "synthetic_classes"),
    "paper2_audiomae_voxceleb1": (6 * 5, "synthetic_classes"),
    # the trained miniature Qwen2-Audio's recipes (tiny stand-in: tiny_qwen2_audio)
    "mini_selectors": (6 * 3, "synthetic_scenes"),
    "mini_random_seeds": (2 * 3, "synthetic_scenes"),
    "mini_ablation": (4 * 3, "synthetic_scenes"),
    "mini_segments_sweep": (15, "synthetic_scenes"),
    "mini_field_methods": (18 * 2, "synthetic_scenes"),
    "mini_budgets": (3 * 3 * 2, "synthetic_scenes"),
    "mini_positions": (4 * 3 * 2, "synthetic_scenes"),
    # two projectors, one tiny stand-in (run once) x 4 selectors x 2 retentions
    "mini_pruneaware": (4 * 2, "synthetic_scenes"),
}


def sweep_jobs(arguments: list[str]) -> list[list[str]]:
    """The jobs `python -m audioprune.run -m <arguments>` launches, by BasicSweeper's own steps:
    the composed `hydra.sweeper.params`, then the command-line arguments, split into jobs."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.global_hydra import GlobalHydra
    from hydra.core.override_parser.overrides_parser import OverridesParser

    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = hydra_compose("config", overrides=arguments, return_hydra_config=True)
    params = [f"{k}={v}" for k, v in cfg.hydra.sweeper.params.items()]
    parsed = OverridesParser.create().parse_overrides(params + arguments)
    return [job for batch in BasicSweeper.split_arguments(parsed, None) for job in batch]


def test_every_recipe_is_covered():
    assert set(GRID) == set(reproduce.EXPERIMENTS)


@pytest.mark.parametrize("name", list(GRID))
def test_tiny_recipe_expands_composes_and_runs(name, tmp_path, session_cache):
    runner.reset_process_state()
    extra = [f"paths.cache_dir={session_cache}", "++dataset.args.num_clips=1", "progress=false"]
    arguments = reproduce.experiment_overrides(name, tmp_path, True, extra)
    jobs = sweep_jobs(arguments)
    count, dataset = GRID[name]
    assert len(jobs) == count and len({tuple(j) for j in jobs}) == count
    sweep = reproduce._sweep_params(name)
    base = reproduce.EXPERIMENTS[name][1]  # None: the recipe sweeps the models
    models = {reproduce.TINY[m] for m in (sweep["model"].split(",") if base is None else [base])}
    # The grid is the recipe's: every swept parameter takes all its values.
    values = defaultdict(set)
    for job in jobs:
        for override in job:
            key, value = override.lstrip("+").split("=", 1)
            values[key].add(value)
    for key, spec in sweep.items():
        expected = len(reproduce._grid_values(spec))
        if key == "dataset":
            expected = 3  # the synthetic stand-ins
        elif key == "model":  # one job per tiny stand-in
            expected = len({reproduce.TINY[m] for m in reproduce._grid_values(spec)})
        assert len(values[key]) == expected, key
    # Each config-group choice composes (scalar values only matter at run time), with the tiny
    # model, synthetic data and the recipe's settings.
    seen: set[str] = set()
    for job in jobs:
        new = {o for o in job if o.split("=", 1)[0] in ("dataset", "selector")} - seen
        if new or job is jobs[-1]:
            cfg = compose(job)
            assert cfg.model.name in models and cfg.dataset.name.startswith("synthetic_")
            assert cfg.dataset.args.num_clips == 1 and cfg.batch_size == 4
            seen |= new
    # One pruned job per recipe runs end to end and lands in the recipe's table.
    job = next(j for j in reversed(jobs) if f"dataset={dataset}" in j)
    result = runner.run(compose(job))
    run = result.metrics["run"]
    assert run["model"] in models and (run["dataset"], run["num_predictions"]) == (dataset, 1)
    # The recipe's identities (its clips and weights, as this command composes them) select it.
    own = {name: reproduce.recipe_identities(name, True, extra)}
    [table] = reproduce.write_tables(tmp_path, [name], own)
    assert f"| {run['model']} | {dataset} | {run['selector']['name']} |" in table.read_text()
    runner.reset_process_state()
