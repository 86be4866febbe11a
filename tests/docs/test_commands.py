"""Every shell command in README.md and docs/*.md that runs one of the
project's scripts works as written.

Which commands. The ```bash, ```sh, ```shell and ```console blocks, and the
inline code spans, are split into simple commands as bash splits them: `\\`
at the end of a line continues it, `#` at the start of a word starts a
comment, quotes group words, and newlines, `;`, `&&`, `||`, `|`, `&`, `(` and
`)` separate commands; redirections (`> file`, `2>&1`) are dropped. Words
before the command (`VAR=value` assignments, `srun`, `env`) are skipped, and a
quoted word that holds a command (`bash -c "..."`, `--command "..."`) is
searched in turn. A project command is `python examples/X.py`,
`python benchmarks/X.py`, `python -m keras_preact.X` or `bash F` for a file F
of this repository (`python3` alike). Every other command (pip, git, docker,
curl, saved_model_cli, `python -m pytest`, ...) is not the project's and is
skipped: what it does is not ours to test. A project command given after
`--` to another (the launcher's worker command) is checked on its own, and the
launcher's parser gets the words before `--`.

What is checked. A Python script exposes `build_parser()`, and
`build_parser().parse_args(words)` accepts the command's words; `...` is not
an argument (write the command out). A shell script exists and passes
`bash -n`; where it handles `--help`, `bash F --help` exits 0. Commands whose
only argument is `--help`, and the quick ones listed in `RUN`, run for real
as written, with the backend they name (on that backend's pass) or, naming
none, on the TensorFlow pass (Keras' default backend). A fence without a
language that holds a project command fails: label it ```bash so it is
checked.
"""

import contextlib
import dataclasses
import functools
import importlib
import importlib.util
import io
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import keras
import pytest

from _checks import DOCUMENTS
from _checks import REPO
from _checks import fenced_blocks

SHELL_FENCES = {"bash", "sh", "shell", "console"}
PYTHONS = {"python", "python3"}
SHELLS = {"bash", "sh"}
PROJECT_DIRS = ("examples/", "benchmarks/", "tests/", ".ci/", "keras_preact/")
BACKEND = keras.backend.backend()
RUN_TIMEOUT_S = 300

# Quick commands run for real, beyond the `--help` ones: (document, the
# command's first words). Each entry must match exactly one documented
# command. `--output-dir` is pointed at the test's temporary folder.
RUN = [
    ("docs/training.md", "python examples/train_cifar100.py --depth 8"),
]


@dataclasses.dataclass(frozen=True)
class Command:
    """One project command found in a document.

    `kind` is "python" (a script), "module" (`python -m`) or "shell";
    `target` the script's path relative to the repository or the module's
    name; `argv` the words after it; `env` the `VAR=value` assignments that
    precede it; `error` set when the text could not be read as commands.
    """

    document: str
    line: int
    kind: str
    target: str
    argv: tuple
    env: tuple = ()
    error: str = ""

    @property
    def text(self):
        head = {"python": ["python", self.target], "module": ["python", "-m", self.target],
                "shell": ["bash", self.target]}.get(self.kind, [self.target])
        return shlex.join([*(f"{k}={v}" for k, v in self.env), *head, *self.argv])

    @property
    def where(self):
        return f"{self.document}:{self.line}"


# --- Markdown ---------------------------------------------------------------


def inline_spans(path):
    """`(line, text)` of each inline code span outside fenced blocks."""
    spans, in_fence = [], False
    for number, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), 1):
        if line.strip().startswith("```"):
            in_fence = not in_fence
        elif not in_fence:
            spans += [(number, m.group(2)) for m in re.finditer(r"(`+)(.+?)\1", line)]
    return spans


# --- Shell ------------------------------------------------------------------


def shell_words(text, first_line=1):
    """Splits shell text into simple commands, as bash does (no expansion).

    Args:
        text: shell source.
        first_line: line number of the text's first line.

    Returns:
        list of commands, each a list of `(word, line)`; quotes are removed,
        comments, separators and redirections dropped.

    Raises:
        ValueError: an unclosed quote.
    """
    commands, words = [], []
    word, word_line, quoted, drop_next = None, first_line, False, False
    line, i, n = first_line, 0, len(text)

    def end_word():
        nonlocal word, quoted, drop_next
        if word is not None or quoted:
            if drop_next:
                drop_next = False
            else:
                words.append((word or "", word_line))
        word, quoted = None, False

    def end_command():
        end_word()
        if words:
            commands.append(list(words))
            words.clear()

    def add(char):
        nonlocal word, word_line
        if word is None:
            word, word_line = "", line
        word += char

    while i < n:
        c = text[i]
        if c == "\\" and i + 1 < n:
            if text[i + 1] == "\n":
                line += 1
            else:
                add(text[i + 1])
            i += 2
            continue
        if c in "'\"":
            close = text.find(c, i + 1) if c == "'" else _closing_double_quote(text, i + 1)
            if close < 0:
                raise ValueError(f"line {line}: unclosed {c} quote")
            body = text[i + 1:close]
            if c == '"':  # bash drops an escaped newline, unescapes \\ \" \$ \`
                body = re.sub(r'\\([\\"$`\n])', _unescape_double_quoted, body)
            if word is None:
                word, word_line = "", line
            word, quoted = word + body, True
            line += text.count("\n", i, close)
            i = close + 1
            continue
        if c == "#" and word is None:
            while i < n and text[i] != "\n":
                i += 1
            continue
        if c in " \t":
            end_word()
        elif c == "\n":
            end_command()
            line += 1
        elif c in ";&|()":
            end_command()
        elif c in "<>":
            if word is not None and word.isdigit():  # 2>&1: a file descriptor
                word = None
            end_word()
            while i + 1 < n and text[i + 1] in "<>&":
                i += 1
            if i + 1 < n and text[i + 1].isdigit() and text[i] == "&":
                i += 1  # >&1 names a descriptor, not a file
            else:
                drop_next = True
        else:
            add(c)
        i += 1
    end_command()
    return commands


def _unescape_double_quoted(match):
    return "" if match.group(1) == "\n" else match.group(1)


def _closing_double_quote(text, start):
    i = start
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text[i] == '"':
            return i
        i += 1
    return -1


def project_commands(words, document, line):
    """The project commands in one simple command's words.

    Args:
        words: list of `(word, line)` from `shell_words`.
        document: the document's path relative to the repository.
        line: line used when a word has none.

    Returns:
        list of `Command`.
    """
    found = []
    for index, (word, word_line) in enumerate(words):
        command = _command_at(words, index, document, word_line)
        if command is not None:
            found.append(command)
        elif any(ch.isspace() for ch in word.strip()) and _mentions_project(word):
            for nested in shell_words(word, word_line):
                found += project_commands(nested, document, word_line)
    return found


def _mentions_project(text):
    return bool(re.search(r"\b(python3?|bash|sh)\s", text))


def _command_at(words, index, document, line):
    """The project command starting at `words[index]`, or None."""
    names = [w for w, _ in words]
    first = os.path.basename(names[index])
    rest = names[index + 1:]
    env = tuple(
        tuple(w.split("=", 1)) for w in names[:index]
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*=.*", w)
    )
    if first in PYTHONS:
        while rest and rest[0] in ("-u", "-B", "-O"):
            rest = rest[1:]
        if len(rest) >= 2 and rest[0] == "-m" and rest[1].split(".")[0] == "keras_preact":
            kind, target, argv = "module", rest[1], rest[2:]
        elif rest and _is_project_path(rest[0]) and rest[0].endswith(".py"):
            kind, target, argv = "python", _normalize_path(rest[0]), rest[1:]
        else:
            return None
    elif first in SHELLS and rest and _is_project_path(rest[0]):
        kind, target, argv = "shell", _normalize_path(rest[0]), rest[1:]
    else:
        return None
    if "--" in argv:  # a launcher: the words after `--` are a command of their own
        after = argv[argv.index("--") + 1:]
        if after and os.path.basename(after[0]) in PYTHONS | SHELLS:
            argv = argv[:argv.index("--")]
    return Command(document, line, kind, target, tuple(argv), env)


def _is_project_path(word):
    return _normalize_path(word).startswith(PROJECT_DIRS)


def _normalize_path(word):
    return word[2:] if word.startswith("./") else word


def document_commands(path):
    """Every project command of one Markdown file, in order.

    Returns:
        list of `Command`; text that cannot be split into commands gives a
        `Command` whose `error` says why.
    """
    document = str(Path(path).relative_to(REPO)) if Path(path).is_relative_to(REPO) else str(path)
    sources = [(line, code, True) for lang, line, _, code in fenced_blocks(path)
               if lang in SHELL_FENCES]
    sources += [(line, code, False) for line, code in inline_spans(path)]
    found = []
    for line, code, fenced in sources:
        try:
            for words in shell_words(code, line):
                found += project_commands(words, document, line)
        except ValueError as e:
            if fenced or _mentions_project(code + " "):
                found.append(Command(document, line, "error", code.strip(), (), error=str(e)))
    return sorted(found, key=lambda c: c.line)


def unlabelled_project_commands(path):
    """`(line, command)` of project commands inside fences without a language."""
    found = []
    for lang, line, _, code in fenced_blocks(path):
        if lang:
            continue
        try:
            for words in shell_words(code, line):
                found += [(c.line, c.text) for c in project_commands(words, "", line)]
        except ValueError:
            continue
    return found


# --- Checks -----------------------------------------------------------------


@functools.cache
def load_script(target):
    """The module of a script or `python -m` target, loaded as Python would.

    A script is loaded by path with its folder first on `sys.path` (as
    `python examples/x.py` has it); modules it imports from that folder are
    dropped again, so two folders' helpers of the same name do not mix.
    """
    if "/" not in target:
        spec = importlib.util.find_spec(target)
        if spec is None:
            raise ImportError(f"no module {target}")
        main = f"{target}.__main__" if spec.submodule_search_locations else target
        return importlib.import_module(main)
    path = REPO / target
    name = "docs_command_" + re.sub(r"\W", "_", target)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    folder = str(path.parent)
    before = set(sys.modules)
    sys.path.insert(0, folder)
    try:
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(folder)
        for added in set(sys.modules) - before:
            if str(getattr(sys.modules[added], "__file__", "") or "").startswith(folder + os.sep):
                del sys.modules[added]
    return module


def parse_error(command):
    """None if the command's own parser accepts it, else why not."""
    if command.error:
        return f"cannot be read as shell: {command.error}"
    if "..." in command.argv:
        return "`...` is not an argument: write the command out in full"
    if command.kind == "shell":
        return shell_script_error(command.target)
    if command.kind == "python" and not (REPO / command.target).is_file():
        return f"{command.target} does not exist"
    try:
        module = load_script(command.target)
    except Exception as e:  # noqa: BLE001 - reported with the command
        return f"{command.target} does not load: {type(e).__name__}: {e}"
    build_parser = getattr(module, "build_parser", None)
    if not callable(build_parser):
        return f"{command.target} has no build_parser() to check its arguments with"
    output = io.StringIO()
    with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
        try:
            build_parser().parse_args(list(command.argv))
        except SystemExit as e:
            if e.code not in (0, None):
                return f"its parser rejects it (exit {e.code}):\n{output.getvalue().strip()}"
    return None


@functools.cache
def shell_script_error(target):
    """None if a shell script exists, passes `bash -n` and, where its code
    (not a comment) names `--help`, exits 0 on `--help`; else why not."""
    path = REPO / target
    if not path.is_file():
        return f"{target} does not exist"
    result = subprocess.run(["bash", "-n", str(path)], capture_output=True, text=True)
    if result.returncode:
        return f"`bash -n {target}` fails: {result.stderr.strip()}"
    if re.search(r"^(?!\s*#).*--help\b", path.read_text(encoding="utf-8"), re.MULTILINE):
        result = subprocess.run(["bash", str(path), "--help"], cwd=REPO, capture_output=True,
                                text=True, timeout=60)
        if result.returncode:
            return f"`bash {target} --help` exits {result.returncode}: {result.stderr[-2000:]}"
    return None


def commands():
    """Every project command of README.md and docs/*.md."""
    found = []
    for path in DOCUMENTS:
        found += document_commands(path)
    return found


def _params(selected):
    ids, params = {}, []
    for command in selected:
        key = command.where
        ids[key] = ids.get(key, 0) + 1
        params.append(pytest.param(command, id=key if ids[key] == 1 else f"{key}-{ids[key]}"))
    return params


def runs_for_real(command):
    """True for the commands `test_quick_command_runs` runs."""
    if command.kind not in ("python", "module"):
        return False
    if command.argv == ("--help",):
        return True
    return any(command.document == document and _without_env(command).startswith(prefix)
               for document, prefix in RUN)


def _without_env(command):
    return dataclasses.replace(command, env=()).text


# --- Tests ------------------------------------------------------------------


@pytest.mark.parametrize("command", _params(commands()))
def test_documented_command_parses(command):
    error = parse_error(command)
    assert error is None, f"{command.where}: `{command.text}`\n{error}"


@pytest.mark.parametrize("path", DOCUMENTS, ids=lambda p: str(p.relative_to(REPO)))
def test_project_commands_are_in_checked_blocks(path):
    unchecked = unlabelled_project_commands(path)
    assert not unchecked, (
        f"{path.relative_to(REPO)}: project commands in a fence without a language are not "
        f"checked; label the fence ```bash: {unchecked}"
    )


def test_run_entries_each_match_one_command():
    everything = commands()
    for document, prefix in RUN:
        matches = [c for c in everything
                   if c.document == document and _without_env(c).startswith(prefix)]
        assert len(matches) == 1, (
            f"RUN entry ({document!r}, {prefix!r}) matches {len(matches)} commands "
            "(expected exactly 1): update RUN with the document"
        )


@pytest.mark.parametrize("command", _params([c for c in commands() if runs_for_real(c)]))
def test_quick_command_runs(command, tmp_path):
    backend = dict(command.env).get("KERAS_BACKEND", "tensorflow")
    if backend != BACKEND:
        pytest.skip(f"the command runs on {backend}; this pass is {BACKEND}")
    argv = list(command.argv)
    for index, word in enumerate(argv[:-1]):
        if word == "--output-dir":
            argv[index + 1] = str(tmp_path / "out")
        elif word == "--data-dir" and not (REPO / argv[index + 1]).exists():
            pytest.skip(f"no data at {argv[index + 1]} beside this checkout")
    head = [command.target] if command.kind == "python" else ["-m", command.target]
    env = {**os.environ, **dict(command.env), "KERAS_BACKEND": backend}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    result = subprocess.run([sys.executable, *head, *argv], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert result.returncode == 0, (
        f"{command.where}: `{command.text}` exits {result.returncode}:\n"
        f"{(result.stdout + result.stderr)[-4000:]}"
    )
    if argv == ["--help"]:
        assert "usage:" in result.stdout, result.stdout[-2000:]


# --- The reader itself --------------------------------------------------------


def test_shell_words_splits_as_bash():
    text = (
        "# a comment line\n"
        "KERAS_BACKEND=jax python a.py --x 1 \\\n"
        "    --y 'two words' && echo done; ls | wc -l  # trailing\n"
        "python b.py --url=a#b > out.json 2>&1\n"
        "export TF_CONFIG='{\"a\": 1,\n  \"b\": 2}'\n"
    )
    assert [[w for w, _ in c] for c in shell_words(text, 10)] == [
        ["KERAS_BACKEND=jax", "python", "a.py", "--x", "1", "--y", "two words"],
        ["echo", "done"], ["ls"], ["wc", "-l"],
        ["python", "b.py", "--url=a#b"],
        ["export", 'TF_CONFIG={"a": 1,\n  "b": 2}'],
    ]
    assert [c[0][1] for c in shell_words(text, 10)] == [11, 12, 12, 12, 13, 14]
    with pytest.raises(ValueError, match="unclosed"):
        shell_words("python a.py 'open")


def test_project_commands_finds_wrapped_and_launched_commands():
    text = (
        "srun bash -c \"export X=1; KERAS_BACKEND=tensorflow python examples/a.py --n 2\"\n"
        "python -m keras_preact.launch --workers 2 -- python examples/b.py --d multi\n"
        "pip install -e '.[jax]' && python -m pytest tests && bash .ci/run\n"
        "CI=true ./benchmarks/c.sh x; python3 benchmarks/d.py\n"
    )
    found = [c for words in shell_words(text) for c in project_commands(words, "x.md", 0)]
    assert [(c.kind, c.target, c.argv, c.env) for c in found] == [
        ("python", "examples/a.py", ("--n", "2"), (("KERAS_BACKEND", "tensorflow"),)),
        ("module", "keras_preact.launch", ("--workers", "2"), ()),
        ("python", "examples/b.py", ("--d", "multi"), ()),
        ("shell", ".ci/run", (), ()),
        ("python", "benchmarks/d.py", (), ()),
    ]


FAKE_SCRIPT = """
import argparse

def build_parser():
    parser = argparse.ArgumentParser()
    parser.add_argument("--table", choices=["1", "2"], default="2")
    parser.add_argument("--depth", type=int, default=110)
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--output-dir", required=True)
    return parser
"""


def test_a_mismatched_command_fails_naming_file_line_and_command(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    (tmp_path / "examples").mkdir()
    (tmp_path / "examples" / "fake_reproduce.py").write_text(FAKE_SCRIPT)
    (tmp_path / "examples" / "no_parser.py").write_text("import argparse\n")
    md = tmp_path / "doc.md"
    md.write_text(
        "# Reproducing\n\nText.\n\n```bash\n# Table 2\n"
        "python examples/fake_reproduce.py --study orderings --depth 110 \\\n"
        "    --dataset cifar10 --output-dir runs/table2\n"
        "KERAS_BACKEND=jax python examples/fake_reproduce.py --table 2 --output-dir r\n"
        "```\n\nOr `python examples/fake_reproduce.py --output-dir r ...`, "
        "`python examples/no_parser.py`.\n"
        "```\npython examples/fake_reproduce.py --depth 8\n```\n"
    )
    found = document_commands(md)
    assert [(c.where, c.env) for c in found] == [
        ("doc.md:7", ()), ("doc.md:9", (("KERAS_BACKEND", "jax"),)), ("doc.md:12", ()),
        ("doc.md:12", ())]
    bad, good, dots, no_parser = found
    assert bad.text == ("python examples/fake_reproduce.py --study orderings --depth 110 "
                        "--dataset cifar10 --output-dir runs/table2")
    assert "unrecognized arguments: --study orderings" in parse_error(bad)
    assert parse_error(good) is None
    assert "`...` is not an argument" in parse_error(dots)
    assert "examples/no_parser.py has no build_parser()" in parse_error(no_parser)
    assert "examples/missing.py does not exist" in parse_error(
        dataclasses.replace(good, target="examples/missing.py"))
    assert unlabelled_project_commands(md) == [
        (14, "python examples/fake_reproduce.py --depth 8")]


def test_shell_scripts_must_exist_parse_and_answer_help(tmp_path, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    (tmp_path / "benchmarks").mkdir()
    scripts = {
        "fake_help.sh": 'if [ "$1" = "--help" ]; then echo usage; exit 0; fi\nexit 3\n',
        "fake_broken_help.sh": 'if [ "$1" = "--help" ]; then exit 4; fi\n',
        "fake_no_help.sh": "# no --help here\nexit 3\n",
        "fake_syntax.sh": "if then\n",
    }
    for name, text in scripts.items():
        (tmp_path / "benchmarks" / name).write_text(text)
    assert shell_script_error("benchmarks/fake_help.sh") is None
    assert "--help` exits 4" in shell_script_error("benchmarks/fake_broken_help.sh")
    assert shell_script_error("benchmarks/fake_no_help.sh") is None  # never run
    assert "`bash -n benchmarks/fake_syntax.sh` fails" in shell_script_error(
        "benchmarks/fake_syntax.sh")
    assert "does not exist" in shell_script_error("benchmarks/fake_missing.sh")
