"""Write buildout's ``versions.cfg`` from pip's ``constraints.txt``.

``constraints.txt`` is the one reviewed pin list; ``versions.cfg`` is
derived from it (``make versions.cfg``) so buildout and pip install the
same releases::

    python -m plone.app.asyncjobs.deployment.versions constraints.txt versions.cfg
"""
import re
import sys
from pathlib import Path


PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._\-]*)\s*==\s*([^\s;#]+)\s*$")


def versions_cfg(constraints_text):
    lines = [
        "# Generated from constraints.txt by",
        "# python -m plone.app.asyncjobs.deployment.versions; do not edit.",
        "[versions]",
    ]
    for line in constraints_text.splitlines():
        if line.startswith("#"):
            lines.append(line)
            continue
        match = PIN.match(line)
        if match:
            name, version = match.groups()
            if name.lower() == "plone.app.asyncjobs":
                continue
            lines.append(f"{name} = {version}")
    return "\n".join(lines) + "\n"


def write_versions_cfg(constraints, target):
    text = versions_cfg(Path(constraints).read_text())
    target = Path(target)
    if not target.exists() or target.read_text() != text:
        target.write_text(text)
    return target


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    source, target = (argv + ["constraints.txt", "versions.cfg"][len(argv):])[:2]
    write_versions_cfg(source, target)


if __name__ == "__main__":
    main()
