"""The engine stays Zope-free: it imports nothing from Zope2, Products or plone."""
import ast
import subprocess
import sys
from pathlib import Path

import plone.app.asyncjobs.engine


ENGINE = Path(plone.app.asyncjobs.engine.__file__).parent
FORBIDDEN = ("Zope2", "Zope", "App", "OFS", "Products", "AccessControl", "Acquisition",
             "ZPublisher", "Testing", "plone")
ALLOWED = ("plone.app.asyncjobs.engine",)


def _imported_modules(path):
    tree = ast.parse(path.read_text(), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.module


def _forbidden(name):
    if name.startswith(ALLOWED):
        return False
    return name.split(".")[0] in FORBIDDEN


def test_engine_modules_import_nothing_from_zope_or_plone():
    offending = [
        f"{path.relative_to(ENGINE)}: {name}"
        for path in ENGINE.rglob("*.py")
        for name in _imported_modules(path)
        if _forbidden(name)
    ]
    assert offending == []


def test_engine_modules_import_each_other_at_module_level_only():
    # An import inside a function hides a cycle between two modules; the
    # engine has none (third-party drivers imported when used are fine).
    hidden = [
        f"{path.relative_to(ENGINE)}:{node.lineno}"
        for path in ENGINE.rglob("*.py") if "tests" not in path.parts
        for function in ast.walk(ast.parse(path.read_text(), str(path)))
        if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef))
        for node in ast.walk(function)
        if isinstance(node, ast.ImportFrom) and node.level == 0
        and node.module.startswith(ALLOWED) and "testing" not in node.module
    ]
    assert hidden == []


def test_importing_the_engine_loads_no_zope_or_plone_module():
    modules = [f"plone.app.asyncjobs.engine.{path.stem}" for path in ENGINE.glob("*.py")
               if path.stem != "__init__"]
    code = (
        "import sys\n"
        + "".join(f"import {name}\n" for name in modules)
        + f"forbidden = {FORBIDDEN!r}\n"
        "loaded = [m for m in sys.modules if m.split('.')[0] in forbidden\n"
        "          and not m.startswith('plone.app.asyncjobs.engine')\n"
        "          and m not in ('plone', 'plone.app', 'plone.app.asyncjobs')]\n"
        "print(loaded)\n"
    )
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout
    assert output.strip() == "[]"


def test_importing_the_engine_installs_no_global_twisted_reactor():
    code = ("import sys, plone.app.asyncjobs.engine.configure, "
            "plone.app.asyncjobs.engine.dispatcher\n"
            "print('twisted.internet.reactor' in sys.modules)")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True).stdout
    assert output.strip() == "False"
