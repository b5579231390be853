"""The engine stays Zope-free: importing all of it loads no Zope2,
Products or plone module other than this package's own."""
import subprocess
import sys
import textwrap


CHECK = textwrap.dedent("""
    import pkgutil, importlib, sys
    import plone.app.asyncjobs.engine as engine
    for info in pkgutil.walk_packages(engine.__path__, engine.__name__ + "."):
        if ".tests" in info.name or info.name.endswith(".postgres"):
            continue
        importlib.import_module(info.name)
    bad = sorted(
        name for name in sys.modules
        if name.split(".")[0] in ("Zope2", "Products", "OFS", "App", "ZPublisher")
        or (name.startswith("plone.") and name != "plone.app"
            and not name.startswith("plone.app.asyncjobs"))
        or (name.startswith("plone.app.asyncjobs.")
            and not name.startswith("plone.app.asyncjobs.engine"))
    )
    print("\\n".join(bad))
""")


def test_the_engine_imports_nothing_from_zope2_products_or_plone():
    result = subprocess.run([sys.executable, "-c", CHECK], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == []
