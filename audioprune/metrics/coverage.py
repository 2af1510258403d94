"""Event coverage: which true sound events of a clip kept at least one audio token.

A Whisper-style encoder gives 25 tokens per second, window by window: token i of window w covers
[30·w + 0.04·i, 30·w + 0.04·(i + 1)) seconds of the clip (`window_seconds` 30, `token_seconds`
0.04). An event [onset, offset) is covered when a kept token's span overlaps it. Synthetic
datasets that know their events (`sample.meta["events"]`: {"kind", "label", "onset", "offset"}
in seconds) get `events_kept` in each prediction record, and runs report the fraction of events
covered, overall and per question family / task.
"""

from __future__ import annotations

from collections import defaultdict

from audioprune.metrics.bootstrap import percent_ci

WINDOW_SECONDS = 30.0
TOKEN_SECONDS = 0.04


def events_kept(
    events: list[dict],
    kept_indices: list[list[int]],
    window_seconds: float = WINDOW_SECONDS,
    token_seconds: float = TOKEN_SECONDS,
) -> list[bool]:
    """Per event, whether a kept token overlaps it.

    events: [E] dicts with `onset` < `offset` (seconds from the clip start); kept_indices: per
    window the kept token positions inside that window. Returns [E] bools.
    """
    spans = [
        (w * window_seconds + i * token_seconds, w * window_seconds + (i + 1) * token_seconds)
        for w, indices in enumerate(kept_indices)
        for i in indices
    ]
    kept = []
    for n, event in enumerate(events):
        try:
            onset, offset = float(event["onset"]), float(event["offset"])
        except (KeyError, TypeError, ValueError) as err:
            raise ValueError(
                f"events_kept: event {n} must have numeric onset and offset (seconds), "
                f"got {event!r}"
            ) from err
        kept.append(any(start < offset and onset < end for start, end in spans))
    return kept


def event_coverage(records: list[dict], groups: dict[str, str] | None = None) -> dict | None:
    """Fraction of events covered, in percent, pooled over events, with a clip bootstrap CI.

    records: prediction records; those with `events_kept` count. groups: {id: group label}
    (question family) for `by_group`. Returns {"overall", "overall_ci95", "events", "by_group",
    "by_group_ci95"}
    or None when no record has events. The CI resamples clips (each clip contributes its
    covered and total event counts), so events of one clip move together.
    """
    rows = [r for r in records if r.get("events_kept")]  # clips without events do not count
    if not rows:
        return None

    def pooled(subset: list[dict]) -> dict:
        covered = [sum(map(bool, r["events_kept"])) for r in subset]
        total = [len(r["events_kept"]) for r in subset]
        return {
            "overall": 100.0 * sum(covered) / sum(total),
            "overall_ci95": percent_ci(covered, total),
            "events": sum(total),
        }

    result = pooled(rows)
    if groups:
        split: dict[str, list[dict]] = defaultdict(list)
        for r in rows:
            split[str(groups.get(str(r["id"])))].append(r)
        cells = {k: pooled(v) for k, v in sorted(split.items())}
        result["by_group"] = {k: c["overall"] for k, c in cells.items()}
        result["by_group_ci95"] = {k: c["overall_ci95"] for k, c in cells.items()}
    return result
