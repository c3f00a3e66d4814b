"""Every script and --option the READMEs show exists and is accepted; CI runs the README's test command."""
import re
import shlex
import subprocess
import sys
from functools import lru_cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHELL_SCRIPTS_CALLING = {"run_standalone_train.sh": "train.py", "run_distribute_train.sh": "train.py",
                         "run_eval.sh": "evaluate.py"}


def commands(readme):
    """Each command line in the README's bash blocks, continuations joined, split at && ."""
    text = (ROOT / readme).read_text()
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = line.split("#")[0].strip()
            for command in filter(None, (part.strip() for part in line.split("&&"))):
                yield command


@lru_cache(maxsize=None)
def accepted_options(script):
    result = subprocess.run([sys.executable, str(ROOT / script), "--help"], capture_output=True, text=True,
                            cwd=ROOT)
    assert result.returncode == 0, f"{script} --help failed: {result.stderr[-500:]}"
    return set(re.findall(r"--[a-z_0-9]+", result.stdout))


def check(command):
    words = shlex.split(command)
    options = [w.split("=")[0] for w in words if w.startswith("--")]
    scripts = [w for w in words if w.endswith((".py", ".sh"))]
    if not scripts:
        return
    script = scripts[0]
    assert (ROOT / script).is_file(), f"{command}: {script} does not exist"
    if script.endswith(".py"):
        target = script
    else:
        target = SHELL_SCRIPTS_CALLING.get(Path(script).name)
        if target is None:  # a launcher with its own options
            text = (ROOT / script).read_text()
            for option in options:
                assert option in text, f"{command}: {script} knows no {option}"
            return
    unknown = set(options) - accepted_options(target)
    assert not unknown, f"{command}: {target} does not accept {sorted(unknown)}"


@pytest.mark.parametrize("readme", ["README.md", "README_CN.md"])
def test_every_command_in_the_readme_is_real(readme):
    found = list(commands(readme))
    assert len(found) > 10
    for command in found:
        if any(word.endswith((".py", ".sh")) for word in command.split()):
            check(command)


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    test_command = re.search(r"TEST_COMMAND='(.*)'", ci).group(1)
    for readme in ("README.md", "README_CN.md"):
        assert test_command in commands(readme)
    setup = next(c for c in (ROOT / "README.md").read_text().split("```bash\n")[1].splitlines())
    assert setup.startswith("python3 -m venv .venv && .venv/bin/pip install -r requirements.txt && bash scripts/run_demo.sh")
