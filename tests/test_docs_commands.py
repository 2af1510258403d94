"""Every command shown in README.md and docs/*.md is run or checked, so the docs cannot drift.

Fenced blocks are read by their info string:
- ```` ```bash ````: runnable here (tiny models, synthetic data). Each `python -m audioprune.run`
  / `audioprune.analyze` command runs in this process on the real configs, pointed at temporary
  folders and cut to a small `limit`; `audioprune.macs` runs and its printed output is compared
  with the `# {...}` line the docs show under it.
- ```` ```python ````: executed as written (the tiny model is built in the session cache).
- ```` ```bash no-run ````: needs real checkpoints, data, GPUs, a cluster or minutes; it must
  follow a `<!-- no-run: reason -->` comment. Each command is still checked: a run / analyze /
  train command composes its Hydra config with its overrides (every job of a `-m` sweep) and
  builds its selector; an `evaluate` command parses; a script exists and takes the options
  shown; a `make` target exists.
Other fences (layouts, file formats) are not commands.
"""

from __future__ import annotations

import ast
import itertools
import json
import re
import shlex
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DOC_FILES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
# A fence may be indented (inside a list item); its body is dedented.
FENCE = re.compile(r"^([ \t]*)```([^\n`]*)\n(.*?)^[ \t]*```", re.MULTILINE | re.DOTALL)
SHELL_INFO = {"bash", "sh", "shell", "console", "zsh"}
NO_RUN_COMMENT = re.compile(r"<!--\s*no-run:\s*\S[^>]*-->\s*$")
RUN_LIMIT = 2  # runnable commands are cut to this many samples


@dataclass
class Block:
    path: Path
    line: int
    info: str
    body: str
    preceding: str  # the text just before the fence

    @property
    def label(self) -> str:
        return f"{self.path.relative_to(REPO)}:{self.line}"


def doc_blocks() -> list[Block]:
    blocks = []
    for path in DOC_FILES:
        text = path.read_text()
        for match in FENCE.finditer(text):
            line = text.count("\n", 0, match.start()) + 1
            before = text[: match.start()].rstrip().splitlines()
            body = textwrap.dedent(match.group(3))
            blocks.append(
                Block(path, line, match.group(2).strip(), body, before[-1] if before else "")
            )
    return blocks


def commands(block: Block) -> list[tuple[list[str], str]]:
    """(argv, the `# ...` comment lines right after it) per command of a shell block."""
    out: list[tuple[list[str], str]] = []
    joined = re.sub(r"\\\n\s*", " ", block.body)
    for raw in joined.splitlines():
        stripped = raw.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            if out:
                out[-1] = (out[-1][0], out[-1][1] + stripped[1:].strip() + "\n")
            continue
        argv = shlex.split(stripped, comments=True)
        while argv and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", argv[0]):  # VAR=value prefixes
            argv = argv[1:]
        out.append((argv, ""))
    return out


BLOCKS = doc_blocks()
SHELL = [b for b in BLOCKS if b.info.split()[:1] and b.info.split()[0] in SHELL_INFO]
RUNNABLE = [b for b in SHELL if b.info == "bash"]
CHECKED = [b for b in SHELL if b.info == "bash no-run"]
PYTHON = [b for b in BLOCKS if b.info == "python"]


def test_docs_show_commands_of_every_kind():
    assert len(RUNNABLE) >= 5 and len(CHECKED) >= 10 and len(PYTHON) >= 2
    unknown = [b.label for b in SHELL if b.info not in ("bash", "bash no-run")]
    assert not unknown, f"shell blocks must be `bash` or `bash no-run`: {unknown}"


@pytest.mark.parametrize("block", CHECKED, ids=lambda b: b.label)
def test_no_run_blocks_say_why(block):
    assert NO_RUN_COMMENT.search(block.preceding), (
        f"{block.label}: a `bash no-run` block must follow <!-- no-run: reason -->"
    )


# ---------------------------------------------------------------------------------------------
# Checking a command without running it.


def _entry(argv: list[str]) -> tuple[str, list[str]] | None:
    """('audioprune.run', args) for `[.venv/bin/]python -m audioprune.X args` and
    `accelerate launch ... -m audioprune.X args`; None for other programs."""
    if "-m" in argv:
        i = argv.index("-m")
        if i + 1 < len(argv) and argv[i + 1].startswith("audioprune"):
            program = Path(argv[0]).name
            if program.startswith("python") or program == "accelerate":
                return argv[i + 1], argv[i + 2 :]
    return None


def _split_sweep(value: str) -> list[str]:
    """`a,b,c` -> [a, b, c]; commas inside [...] or quotes belong to one value."""
    parts, depth, current = [], 0, ""
    for char in value:
        depth += char == "["
        depth -= char == "]"
        if char == "," and depth == 0:
            parts.append(current)
            current = ""
        else:
            current += char
    return [*parts, current]


def sweep_jobs(args: list[str]) -> list[list[str]]:
    """The override lists of every job a `-m` multirun starts (cartesian product)."""
    axes = []
    for arg in args:
        key, _, value = arg.partition("=")
        choices = _split_sweep(value) if value else [value]
        axes.append([f"{key}={v}" for v in choices])
    return [list(job) for job in itertools.product(*axes)]


def check_run_command(args: list[str], config_name: str = "config") -> None:
    from audioprune.budget import check_retention, make_budget
    from audioprune.config import compose
    from audioprune.options import check_run_options, import_user_modules, make_selector

    multirun = "-m" in args or "--multirun" in args
    overrides = [a for a in args if a not in ("-m", "--multirun")]
    jobs = sweep_jobs(overrides) if multirun else [overrides]
    for job in jobs:
        cfg = compose(job, config_name=config_name)
        check_run_options(cfg)
        check_retention(cfg.retention)
        make_budget(cfg)
        import_user_modules(list(cfg.get("imports") or []))
        make_selector(cfg.selector)


def _script_options(script: Path) -> tuple[set[str], bool]:
    """The `--options` a script's argparse parser defines, and whether it takes positionals
    (a thin wrapper's too: the parser of the audioprune module it imports `main` from)."""
    options, positional = set(), False
    tree = ast.parse(script.read_text())
    sources = [tree]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("audioprune."):
            if any(alias.name == "main" for alias in node.names):
                module = REPO / Path(*node.module.split(".")).with_suffix(".py")
                sources.append(ast.parse(module.read_text()))
    for node in (n for source in sources for n in ast.walk(source)):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
            names = [a.value for a in node.args if isinstance(a, ast.Constant)]
            options |= {n for n in names if n.startswith("--")}
            positional |= any(not n.startswith("-") for n in names)
    return options, positional


def check_command(argv: list[str]) -> None:
    entry = _entry(argv)
    if entry is not None:
        module, args = entry
        if module == "audioprune.run":
            check_run_command(args)
        elif module == "audioprune.analyze":  # root config configs/analyze.yaml
            from audioprune.analyze import refuse_leading_word

            refuse_leading_word(args)  # overrides only, as for audioprune.run
            check_run_command(args, config_name="analyze")
        elif module == "audioprune.train_projector":  # root config configs/train_projector.yaml
            from audioprune.config import compose, plain
            from audioprune.train_projector import Recipe

            name = "train_projector"
            if args[:1] == ["--config-name"]:  # another root config (a later training stage)
                name, args = args[1], args[2:]
            check_run_command(args, config_name=name)
            Recipe(**plain(compose(args, config_name=name).train.recipe))
        elif module in ("audioprune.classifier.train", "audioprune.classifier.analysis"):
            from audioprune.config import compose

            cfg = compose(args)
            assert module.endswith("analysis") or "train" in cfg, "pick a recipe: +train=..."
        elif module == "audioprune.evaluate":
            from audioprune.evaluate import build_parser

            build_parser().parse_args(args)
        elif module == "audioprune.macs":  # root config configs/macs.yaml
            check_run_command(args, config_name="macs")
        elif module == "audioprune.plan":  # root config configs/plan.yaml
            check_run_command(args, config_name="plan")
        else:
            raise AssertionError(f"no check for python -m {module}")
        return
    if argv[0] == "make":
        targets = re.findall(r"^([a-zA-Z_-]+):", (REPO / "Makefile").read_text(), re.MULTILINE)
        assert all(t in targets for t in argv[1:]), (argv, targets)
        return
    if Path(argv[0]).name.startswith("python") and argv[1].startswith("scripts/"):
        script = REPO / argv[1]
        assert script.is_file(), script
        options, positional = _script_options(script)
        shown = [a.split("=")[0] for a in argv[2:] if a.startswith("--")]
        assert set(shown) <= options, f"{script.name} has no option {set(shown) - options}"
        extra = [a for a in argv[2:] if not a.startswith("-") and "=" in a]
        assert not extra or positional, f"{script.name} takes no overrides {extra}"
        return
    raise AssertionError(f"no check for this command: {shlex.join(argv)}")


@pytest.fixture
def user_package(tmp_path, monkeypatch):
    """The files the extending page's example names: my_pkg/selectors.py registering `my_sel`
    and my_configs/selector/my_sel.yaml, in the working directory (`PYTHONPATH=.`)."""
    (tmp_path / "my_pkg").mkdir()
    (tmp_path / "my_pkg" / "__init__.py").write_text("")
    (tmp_path / "my_pkg" / "selectors.py").write_text(
        "from audioprune.selectors import register_selector\n"
        "from audioprune.selectors.base import SELECTORS\n"
        "from audioprune.selectors.simple import TopK\n\n\n"
        "class MySel(TopK):\n"
        "    def __init__(self, width: int = 1):\n"
        "        super().__init__()\n"
        "        self.width = width\n\n\n"
        "if 'my_sel' not in SELECTORS:\n"
        "    register_selector('my_sel')(MySel)\n"
    )
    (tmp_path / "my_configs" / "selector").mkdir(parents=True)
    (tmp_path / "my_configs" / "selector" / "my_sel.yaml").write_text("name: my_sel\nwidth: 2\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PWD", str(tmp_path))
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


@pytest.mark.parametrize("block", CHECKED, ids=lambda b: b.label)
def test_no_run_commands_compose(block, user_package):
    cmds = commands(block)
    assert cmds, f"{block.label}: no command in the block"
    for argv, _ in cmds:
        argv = [a.replace("$PWD", str(user_package)) for a in argv]
        try:
            check_command(argv)
        except Exception as err:
            raise AssertionError(f"{block.label}: {shlex.join(argv)}: {err}") from err


# ---------------------------------------------------------------------------------------------
# Running the runnable ones.


def _limited(args: list[str]) -> list[str]:
    """The overrides with `limit` cut to RUN_LIMIT (kept when smaller)."""
    kept = [a for a in args if not a.startswith("limit=")]
    given = [int(a.split("=", 1)[1]) for a in args if a.startswith("limit=")]
    return [*kept, f"limit={min([RUN_LIMIT, *given])}"]


@pytest.fixture(scope="module")
def shared_results(tmp_path_factory):
    """One results folder for every runnable command, so a block's later command (e.g.
    `evaluate_only=true`) finds what an earlier one wrote."""
    return tmp_path_factory.mktemp("doc-results")


def run_command(argv: list[str], comment: str, session_cache: Path, results: Path, capsys) -> None:
    from audioprune import runner
    from audioprune.config import compose

    entry = _entry(argv)
    assert entry is not None, f"only python -m audioprune.* commands are runnable: {argv}"
    module, args = entry
    paths = [f"paths.cache_dir={session_cache}", f"paths.results_dir={results}", "progress=false"]
    if module == "audioprune.run":
        assert "-m" not in args, "a runnable block shows single runs"
        result = runner.run(compose([*_limited(args), *paths]))
        assert result.records and all(r.get("prediction") is not None for r in result.records)
    elif module == "audioprune.analyze":
        from audioprune.analyze import analyze

        cfg = compose([*_limited(args), *paths], config_name="analyze")
        assert analyze(cfg)
    elif module == "audioprune.macs":
        from audioprune.macs import main

        capsys.readouterr()
        result = main.__wrapped__(compose(args, config_name="macs"))
        printed = json.loads(capsys.readouterr().out)
        assert printed == result
        shown = re.search(r"\{.*\}", comment)
        if shown:  # the output the docs show: every key / value it names
            expected = json.loads(shown.group(0).replace("...,", "").replace(", ...", ""))
            assert {k: printed[k] for k in expected} == expected
    else:
        raise AssertionError(f"no runner for python -m {module}")


@pytest.mark.slow
@pytest.mark.parametrize("block", RUNNABLE, ids=lambda b: b.label)
def test_runnable_commands_run(block, session_cache, shared_results, fresh_process_state, capsys):
    for argv, comment in commands(block):
        try:
            run_command(argv, comment, session_cache, shared_results, capsys)
        except Exception as err:
            raise AssertionError(f"{block.label}: {shlex.join(argv)}: {err}") from err


@pytest.mark.slow
@pytest.mark.parametrize("block", PYTHON, ids=lambda b: b.label)
def test_python_examples_run(block, session_cache, monkeypatch, fresh_process_state, capsys):
    monkeypatch.setenv("AUDIOPRUNE_CACHE", str(session_cache))
    exec(compile(block.body, block.label, "exec"), {"__name__": "__docs__"})
    assert capsys.readouterr().out.strip(), f"{block.label} printed nothing"


def test_command_parsing():
    block = Block(
        REPO / "README.md",
        1,
        "bash",
        "# a comment\nPYTHONPATH=. python -m audioprune.run a=1 \\\n    'b=[x,y]'  # trailing\n"
        '# {"k": 1}\n',
        "",
    )
    assert commands(block) == [(["python", "-m", "audioprune.run", "a=1", "b=[x,y]"], '{"k": 1}\n')]
    assert sweep_jobs(["s=a,b", "r=[1,2]"]) == [["s=a", "r=[1,2]"], ["s=b", "r=[1,2]"]]
    assert _limited(["x=1", "limit=8"]) == ["x=1", "limit=2"]
    assert sys.executable  # the runnable commands run in this interpreter
