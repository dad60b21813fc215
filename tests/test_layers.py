"""The package's layers, read from its source: the library (everything outside interpolants/app
and the interpolants.cli shim) imports neither the app nor the app's packages (argparse, yaml,
matplotlib, tqdm: progress bars come from the app through interpolants.progress.BAR_FACTORY),
and no module imports another's private names."""

from __future__ import annotations

import ast
from pathlib import Path

import interpolants

PACKAGE = Path(interpolants.__file__).parent
ROOT = PACKAGE.parent
APP_PACKAGES = {"argparse", "yaml", "matplotlib", "tqdm"}

# The allowed edges: the package's __init__ is the composition root that gives fit its
# default run plots (interpolants.train.DEFAULT_ON_END) and every loop its progress bar
# (interpolants.progress.BAR_FACTORY). A new edge fails the test.
ALLOWED_APP = {
    ("interpolants", "interpolants.app.plots"),
    ("interpolants", "interpolants.app.progress_bars"),
}


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> list[tuple[str, str]]:
    """(imported module, imported name or '') of every import in the file, relative ones
    resolved."""
    name = _module(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(a.name, "") for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(up + ([node.module] if node.module else []))
            found += [(base, a.name) for a in node.names]
    return found


def _is_app(module: str) -> bool:
    return module == "interpolants.cli" or module.startswith("interpolants.app")


def _library() -> list[Path]:
    return [p for p in sorted(PACKAGE.rglob("*.py")) if not _is_app(_module(p))]


def test_the_library_imports_neither_the_app_nor_its_packages():
    bad = set()
    for path in _library():
        for module, name in _imports(path):
            full = f"{module}.{name}" if name else module
            if _is_app(module) or _is_app(full):
                bad.add((_module(path), module if _is_app(module) else full))
            top = module.split(".")[0]
            if top in APP_PACKAGES:
                bad.add((_module(path), top))
    assert bad <= ALLOWED_APP, sorted(bad - ALLOWED_APP)


def test_no_module_imports_another_modules_private_names():
    files = sorted(PACKAGE.rglob("*.py")) + sorted((ROOT / "tests").glob("*.py"))
    files += sorted((ROOT / "benchmarks").glob("*.py"))
    bad = []
    for path in files:
        for module, name in _imports(path):
            private = name.startswith("_") and not name.startswith("__")
            if private and module.startswith("interpolants"):
                bad.append(f"{path.relative_to(ROOT)} <- {module}.{name}")
    assert not bad, bad
