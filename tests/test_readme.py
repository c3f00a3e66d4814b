"""Every script and --option the READMEs show exists and is accepted; CI runs the README's test command,
which installs the browser its tests need where it can, and stops before any test where it cannot."""
import io
import os
import re
import shlex
import shutil
import subprocess
import sys
from contextlib import redirect_stdout
from functools import lru_cache
from pathlib import Path

import pytest
from helpers import script_main

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
    """The options `python script --help` lists (its main() as its command line runs it)."""
    shown = io.StringIO()
    with redirect_stdout(shown), pytest.raises(SystemExit) as stopped:
        script_main(script)(["--help"])
    assert stopped.value.code in (0, None), f"{script} --help failed: {stopped.value.code}"
    return set(re.findall(r"--[a-z_0-9]+", shown.getvalue()))


def check(command):
    words = shlex.split(command)
    options = [w.split("=")[0] for w in words if w.startswith("--")]
    scripts = [w for w in words if w.endswith((".py", ".sh"))]
    if not scripts or scripts[0].startswith("../"):  # none, or the peer's (../shared), not this project's
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


DOCUMENTS = ["README.md", "README_CN.md"] + sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md"))


@pytest.mark.parametrize("readme", DOCUMENTS)
def test_every_command_in_the_readme_and_docs_is_real(readme):
    found = list(commands(readme))
    assert len(found) > (10 if readme.startswith("README") else 0)
    for command in found:
        if any(word.endswith((".py", ".sh")) for word in command.split()):
            check(command)


def test_the_readme_is_a_few_hundred_lines_and_links_its_depth():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 450
    for doc in DOCUMENTS[2:]:
        assert f"({doc}" in text, f"README.md does not link {doc}"


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    test_command = re.search(r"TEST_COMMAND='(.*)'", ci).group(1)
    for readme in ("README.md", "README_CN.md"):
        assert test_command in commands(readme)
    setup = next(c for c in (ROOT / "README.md").read_text().split("```bash\n")[1].splitlines())
    assert setup.startswith("python3 -m venv .venv && .venv/bin/pip install -r requirements.txt && bash scripts/run_demo.sh")
    assert test_command == "bash scripts/run_tests.sh"


RAN = """import os
import pytest


@pytest.mark.fast
def test_it_ran():
    open(os.environ["RAN"], "w").close()
"""
# stand-ins for the commands scripts/run_tests.sh uses to install the browser: each logs its call
APT_GET = 'echo "apt-get $*" >> "$LOG"; case "$*" in *install*) {install};; esac'
PUTS_THE_BROWSER_IN_PLACE = 'mkdir -p "$(dirname "$CHROMIUM")" && touch "$CHROMIUM" "$CHROMEDRIVER" && chmod +x "$CHROMIUM" "$CHROMEDRIVER"'
SUDO_ALLOWED = '[ "$*" = "-n true" ] && exit 0; echo "sudo $*" >> "$LOG"; exec "$@"'
SUDO_REFUSED = 'echo "sudo: a password is required" >&2; exit 1'


def run_the_test_command(tmp_path, uid, sudo=None, apt_get=PUTS_THE_BROWSER_IN_PLACE, *argv):
    """scripts/run_tests.sh on a one-test suite, on a machine without the browser, as user `uid`
    (with `sudo` behaving as given, or absent): (its result, the commands it called, whether the test ran)."""
    fakes = tmp_path / "bin"
    fakes.mkdir()
    commands = {"id": f"echo {uid}", "apt-get": APT_GET.format(install=apt_get), "sudo": sudo}
    for name, body in commands.items():
        if body is not None:
            (fakes / name).write_text(f"#!/bin/sh\n{body}\n")
            (fakes / name).chmod(0o755)
    for name in ("bash", "dirname", "env", "nproc", "awk", "mkdir", "touch", "chmod"):  # and nothing else
        (fakes / name).symlink_to(shutil.which(name))
    (tmp_path / "test_ran.py").write_text(RAN)
    env = dict(os.environ, PATH=str(fakes), PYTHON=sys.executable, LOG=str(tmp_path / "calls"),
               RAN=str(tmp_path / "ran"), CHROMIUM=str(tmp_path / "browser" / "chromium"),
               CHROMEDRIVER=str(tmp_path / "browser" / "chromedriver"))
    result = subprocess.run([str(fakes / "bash"), str(ROOT / "scripts" / "run_tests.sh"), *argv, str(tmp_path / "test_ran.py"),
                             "-n", "1", "-p", "no:cacheprovider"],
                            env=env, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=300)
    calls = (tmp_path / "calls").read_text().splitlines() if (tmp_path / "calls").exists() else []
    return result, calls, (tmp_path / "ran").exists()


INSTALL = ["apt-get update -qq", "apt-get install -y -qq chromium chromium-driver"]


def test_the_test_command_installs_the_browser_as_root(tmp_path):
    result, calls, ran = run_the_test_command(tmp_path, 0)
    assert (result.returncode, calls, ran) == (0, INSTALL, True), result.stderr[-2000:]
    assert "installing Chromium and its driver for the browser tests: apt-get update" in result.stdout


def test_the_test_command_installs_the_browser_through_sudo(tmp_path):
    result, calls, ran = run_the_test_command(tmp_path, 1000, SUDO_ALLOWED)
    assert (result.returncode, ran) == (0, True), result.stderr[-2000:]
    assert calls == ["sudo apt-get update -qq", INSTALL[0],
                     "sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver",
                     INSTALL[1]]


@pytest.mark.parametrize("sudo", [None, SUDO_REFUSED], ids=["no sudo", "sudo refused"])
def test_without_root_or_sudo_the_test_command_names_the_install_and_runs_no_test(tmp_path, sudo):
    result, calls, ran = run_the_test_command(tmp_path, 1000, sudo)
    assert (result.returncode, calls, ran, result.stdout) == (1, [], False, "")
    assert result.stderr.splitlines() == [
        f"error: the browser tests need Chromium and its driver ({tmp_path}/browser/chromium, "
        f"{tmp_path}/browser/chromedriver), and installing them needs root: run 'apt-get update && apt-get install "
        f"-y chromium chromium-driver' as root, then this command again"]


def test_a_browser_the_install_does_not_bring_runs_no_test(tmp_path):
    result, calls, ran = run_the_test_command(tmp_path, 0, None, "true")
    assert (result.returncode, calls, ran) == (1, INSTALL, False)
    assert result.stderr.splitlines()[-1].startswith("error: apt-get installed chromium and chromium-driver, but ")


def test_the_fast_tier_needs_no_browser(tmp_path):
    result, calls, ran = run_the_test_command(tmp_path, 1000, None, PUTS_THE_BROWSER_IN_PLACE, "--fast")
    assert (result.returncode, calls, ran) == (0, [], True), result.stderr[-2000:]
