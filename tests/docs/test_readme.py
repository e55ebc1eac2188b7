"""The README's examples, run in order against a fresh `mlbuffet up`, print what the README shows.

Every `$ command` of the "Using it" and "From the command line and from Python" sections runs in
bash, in a shell that has activated the environment (as the README tells a user to), with the
README's addresses pointed at this test's `up` on ephemeral ports. Its output must match the
lines the README prints under it, where `…` stands for anything and what differs from run to run
(node ids, upload times, which modelhost got how many items) is compared by its form only. The
`python` block runs too. A README that drifts from the program fails here.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.cli.conftest import StartUp

pytestmark = pytest.mark.processes

REPO = Path(__file__).resolve().parents[2]
SECTIONS = ("## Using it", "## Watching it")
"""The README's examples from the first heading up to the second."""
COMMAND_TIMEOUT_S = 60.0

VARYING = [
    (re.compile(r"modelhost-vm-[0-9a-f]+"), "<node>"),
    (re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+00:00"), "<time>"),
    # Which modelhost answered how many of the items is up to NATS's queue group.
    (re.compile(r'"nodes":\{[^}]*\}'), '"nodes":{<counts>}'),
]


@dataclass
class Example:
    command: str
    shows: list[str]
    """The output lines the README prints under the command (none: it shows no output)."""


def readme_examples() -> tuple[list[Example], list[str]]:
    """The `$ ` commands with their shown output, and the ```python blocks, in README order."""
    text = (REPO / "README.md").read_text()
    start, end = (text.index(heading) for heading in SECTIONS)
    examples: list[Example] = []
    programs: list[str] = []
    for language, block in re.findall(r"^```(\w*)\n(.*?)^```", text[start:end], re.M | re.S):
        if language == "python":
            programs.append(block)
            continue
        lines = iter(block.splitlines())
        for line in lines:
            if line.startswith("$ "):
                command = line[2:]
                while command.endswith("\\"):
                    command = command[:-1] + next(lines).strip()
                examples.append(Example(command, []))
            elif line.strip():
                examples[-1].shows.append(line)
    return examples, programs


def normalised(line: str) -> str:
    for pattern, stands_for in VARYING:
        line = pattern.sub(stands_for, line)
    return line


def matches(shown: str, printed: str) -> bool:
    pattern = ".*".join(re.escape(part) for part in normalised(shown).split("…"))
    return re.fullmatch(pattern, normalised(printed)) is not None


def test_the_readme_examples_print_what_the_readme_shows(start_up: StartUp, tmp_path: Path) -> None:
    examples, programs = readme_examples()
    assert len(examples) >= 20 and programs, "the README's examples were not found"
    up = start_up("--modelhosts", "2", env={"PATH": "/usr/local/bin:/usr/bin:/bin"})
    work = tmp_path / "work"
    work.mkdir()
    for name in ("models", "tests"):  # the README runs from the repository's folder
        (work / name).symlink_to(REPO / name)
    activated = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin",
        "MLBUFFET_URL": up.rest,
        "COLUMNS": "80",  # `models list` says it shows an 80-column terminal
    }

    def run(*argv: str) -> subprocess.CompletedProcess[str]:
        """Run in the README's folder and shell, with its addresses pointed at this `up`."""
        *program, text = argv
        for default, actual in (
            ("http://localhost:8002", up.rest),
            ("http://127.0.0.1:8002", up.rest),
            ("nats://127.0.0.1:4222", up.nats),
        ):
            text = text.replace(default, actual)
        ran = subprocess.run(
            [*program, text],
            cwd=work,
            env=activated,
            capture_output=True,
            text=True,
            timeout=COMMAND_TIMEOUT_S,
            check=False,
        )
        assert ran.returncode == 0, f"{text}\n{ran.stderr}"
        return ran

    for example in examples:
        ran = run("bash", "-c", example.command)
        if not example.shows:
            continue
        printed = ran.stdout.strip().splitlines()
        assert len(printed) == len(example.shows), f"{example.command}\n{ran.stdout}"
        for shown, line in zip(example.shows, printed, strict=True):
            assert matches(shown, line), f"{example.command}\nREADME: {shown}\nprinted: {line}"
    for program in programs:
        run("python", "-c", program)
