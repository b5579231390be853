"""freeze_start_up, in a process of its own: it changes its whole process."""
import subprocess
import sys


def test_freeze_start_up_exempts_what_start_up_left_from_collections():
    script = """
import gc
from plone.app.asyncjobs.engine.gcfreeze import freeze_start_up

def collected(item):
    return any(tracked is item for tracked in gc.get_objects())

kept = [[] for _ in range(1000)]
assert collected(kept[0])
exempt = freeze_start_up()
assert exempt == gc.get_freeze_count() >= len(kept), exempt
assert not collected(kept[0])
assert collected([])  # what comes later is collected as before
print("ok")
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60)
    assert result.stdout.strip() == "ok", result.stderr
