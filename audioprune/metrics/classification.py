"""Classification metrics of the classifier family.

- `classification` (ESC-50, Speech Commands, VoxCeleb1, synthetic): prediction = the predicted
  class name; top-1 accuracy in percent over all samples (no prediction = wrong, reported as
  `missing`), plus per-class accuracy.
- `multilabel` (AudioSet): prediction = one score per class in the order of `Sample.choices`;
  mAP = mean over classes with at least one positive of scikit-learn's average precision (the
  authors' `util/stat.py` convention), in percent; a sample without prediction scores 0.
"""

from __future__ import annotations

import numpy as np

from audioprune.records import Sample


def score_classification(samples: list[Sample], predictions: dict) -> dict:
    correct, per_class = 0, {}
    for s in samples:
        hit = predictions.get(s.id) == s.answer
        correct += hit
        seen, right = per_class.get(s.answer, (0, 0))
        per_class[s.answer] = (seen + 1, right + hit)
    n = len(samples)
    return {
        "accuracy": 100.0 * correct / n if n else float("nan"),
        "num_samples": n,
        "missing": sum(1 for s in samples if s.id not in predictions),
        "per_class_accuracy": {k: 100.0 * r / c for k, (c, r) in sorted(per_class.items())},
    }


def score_multilabel(samples: list[Sample], predictions: dict) -> dict:
    from sklearn.metrics import average_precision_score

    if not samples:
        return {"mAP": float("nan"), "num_samples": 0, "missing": 0}
    labels = samples[0].choices or []
    index = {name: i for i, name in enumerate(labels)}
    truth = np.zeros((len(samples), len(labels)), dtype=np.int8)
    scores = np.zeros((len(samples), len(labels)), dtype=np.float64)
    for row, s in enumerate(samples):
        for ref in s.references or []:
            truth[row, index[ref]] = 1
        pred = predictions.get(s.id)
        if pred is not None:
            if len(pred) != len(labels):
                raise ValueError(
                    f"sample {s.id}: {len(pred)} class scores, the dataset has {len(labels)} classes"
                )
            scores[row] = pred
    present = truth.sum(axis=0) > 0
    ap = average_precision_score(truth[:, present], scores[:, present], average=None)
    return {
        "mAP": 100.0 * float(np.mean(ap)),
        "num_samples": len(samples),
        "classes_scored": int(present.sum()),
        "missing": sum(1 for s in samples if s.id not in predictions),
    }
