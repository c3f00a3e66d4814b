"""The project's layout: entry scripts are thin mains over library modules and import no script."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ENTRY_SCRIPTS = {"train", "evaluate", "separate", "preprocess", "postprocess", "preprocess_310", "export", "bench",
                 "selftest", "scripts/make_demo_data", "scripts/screenshot_report", "ascend310_infer/selftest_310"}


def imported_modules(path):
    """Top-level names of every module a Python file imports (import x.y / from x.y import z -> x)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module.split(".")[0])
    return names


def test_no_module_imports_an_entry_script():
    """Nor does the project import anything under scripts/ (`import scripts.x`): the scripts there
    are entry points too (a test may import one it tests)."""
    files = [p for p in ROOT.rglob("*.py") if ".venv" not in p.parts and "outputs" not in p.parts]
    assert {str(p.relative_to(ROOT).with_suffix("")) for p in files} >= ENTRY_SCRIPTS
    entry = {name for name in ENTRY_SCRIPTS if "/" not in name}
    offenders = {str(p.relative_to(ROOT)): sorted(imported_modules(p) & (entry if "tests" in p.parts
                                                                           else entry | {"scripts"}))
                 for p in files}
    assert {f: names for f, names in offenders.items() if names} == {}


def test_every_entry_script_is_a_thin_main():
    """Each entry script defines main() and nothing else but small helpers (bench.py's measurements,
    separate.py's plot): the work lives in the library, where tests and other scripts reach it."""
    for name in sorted(ENTRY_SCRIPTS):
        tree = ast.parse((ROOT / f"{name}.py").read_text())
        functions = [node for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))]
        assert "main" in [f.name for f in functions], name
        assert not [f.name for f in functions if isinstance(f, ast.ClassDef)], name
        lines = sum(f.end_lineno - f.lineno + 1 for f in functions)
        assert lines <= 120, (name, lines)
