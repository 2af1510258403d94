"""`make reproduce`: run the paper's experiments and write its tables next to the published
numbers. The logic is `audioprune.reproduce` (options: --experiments, --tiny, --tables-only,
--results-dir, extra Hydra overrides); this file only calls its `main`."""

from audioprune.reproduce import main

if __name__ == "__main__":
    main()
