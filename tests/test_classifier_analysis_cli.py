"""`python -m audioprune.classifier.analysis`: each (selector, retention) gets its own keyed
folder, so analysing a second selector or retention never overwrites the first."""

from __future__ import annotations

import json


def test_analysis_folders_are_keyed_by_selector_and_retention(tmp_path, session_cache):
    from audioprune.classifier.analysis import analyse_from_config
    from audioprune.config import compose

    def main(overrides):  # the body of the Hydra app `python -m audioprune.classifier.analysis`
        return analyse_from_config(compose(overrides))

    results = tmp_path / "results"
    common = [
        "model=tiny_ast_random",
        "dataset=synthetic_classes",
        f"dataset.args.root={session_cache / 'data' / 'sc'}",
        "dataset.args.clips_per_class=5",
        f"paths.cache_dir={session_cache}",
        f"paths.results_dir={results}",
        "limit=4",
    ]
    settings = [("topk", 0.5), ("random", 0.5), ("topk", 0.7)]
    for selector, retention in settings:
        main([*common, f"selector={selector}", f"retention={retention}"])
    written = sorted((results / "analysis").rglob("low_intensity.json"))
    assert len(written) == 3  # one folder per setting, none overwritten
    folders = {}
    for path in written:
        identity = json.loads((path.parent / "identity.json").read_text())
        low = json.loads(path.read_text())
        assert (identity["selector"]["name"], identity["retention"]) == (
            low["selector"],
            low["retention"],
        )
        assert (path.parent / "tau_per_block.csv").is_file()
        folders[(low["selector"], low["retention"])] = path.parent
    assert set(folders) == set(settings)
    again = main([*common, "selector=topk", "retention=0.5"])
    assert again["out"] == folders[("topk", 0.5)]  # the same setting finds its own folder
