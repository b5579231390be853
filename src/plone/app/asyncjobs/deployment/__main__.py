"""``make run`` / ``make stop``: the buildout deployment in the checkout.

    python -m plone.app.asyncjobs.deployment run    # build, start, create site
    python -m plone.app.asyncjobs.deployment stop
"""
import sys
import time

from plone.app.asyncjobs.deployment import ADMIN
from plone.app.asyncjobs.deployment import DEFAULT_PORTS
from plone.app.asyncjobs.deployment import ROOT
from plone.app.asyncjobs.deployment import SITE_ID
from plone.app.asyncjobs.deployment import TEST_USER
from plone.app.asyncjobs.deployment import Deployment
from plone.app.asyncjobs.deployment import port_open


def deployment():
    return Deployment(ROOT, ports=DEFAULT_PORTS, config=ROOT / "buildout.cfg")


def run():
    started = time.monotonic()
    busy = [f"{name} {port}" for name, port in DEFAULT_PORTS.items()
            if port_open("127.0.0.1", port)]
    dep = deployment()
    if busy:
        sys.exit(f"ports in use: {', '.join(busy)}; is it running already? "
                 "Stop it with 'make stop'.")
    dep.buildout()
    try:
        dep.start()
    except Exception:
        dep.stop()
        raise
    p = DEFAULT_PORTS
    # Plone serves 127.0.0.1 unthemed (plone.app.theming's default list of
    # unthemed host names), so a newcomer's browser should use "localhost".
    site = f"http://localhost:{p['http-instance']}/{SITE_ID}"
    worker = f"http://localhost:{p['http-worker']}/{SITE_ID}"
    print(f"""
Ready after {time.monotonic() - started:.0f} s.

  Site:      {site}    (admin login: {ADMIN[0]} / {ADMIN[1]};
             non-Manager user: {TEST_USER[0]} / {TEST_USER[1]})
  Worker:    {worker}    (runs the jobs)
  Demo jobs: {site}/@@asyncjobs-demo    (as admin: queue three example jobs)
  Jobs:      {site}/@@asyncjobs-controlpanel    (Site Setup > Asynchronous jobs)
  ZEO:       127.0.0.1:{p['zeo-port']}
  Logs:      var/log/instance.log, var/log/worker.log, var/log/zeo.log

Monitor commands to try:
  echo 'asyncdb status' | nc -N 127.0.0.1 {p['monitor-instance']}
  echo 'asyncdb status' | nc -N 127.0.0.1 {p['monitor-worker']}
  echo 'async status' | nc -N 127.0.0.1 {p['monitor-worker']}
  echo 'help' | nc -N 127.0.0.1 {p['monitor-worker']}
  (without nc: make monitor PORT={p['monitor-worker']} CMD='asyncdb status')

Stop everything with: make stop
""")


def stop():
    killed = deployment().stop()
    if killed:
        print(f"killed leftover processes {killed}")
    print("stopped")


def monitor(port, *command):
    from plone.app.asyncjobs.deployment import monitor_command

    print(monitor_command("127.0.0.1", int(port), " ".join(command) or "help"))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    command = argv[0] if argv else "run"
    {"run": run, "stop": stop, "monitor": monitor}[command](*argv[1:])


if __name__ == "__main__":
    main()
