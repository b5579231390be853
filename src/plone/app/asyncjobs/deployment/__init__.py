"""Build and run the buildout deployment: ZEO server, instance, worker.

Used by ``make run`` / ``make stop`` and by the end-to-end test
(``tests/test_deployment.py``)::

    python -m plone.app.asyncjobs.deployment run     # build, start, create the site
    python -m plone.app.asyncjobs.deployment stop

* zc.buildout itself lives in a small venv of its own (``.venv-buildout``
  in the checkout), with the releases pinned in ``constraints.txt``;
* ``versions.cfg`` is generated from ``constraints.txt``;
* every buildout shares one eggs directory, ``.cache/buildout-eggs`` in the
  checkout: only the first build downloads (a few minutes), later ones take
  seconds;
* processes are started with zdaemon (``bin/zeo start``, ``bin/instance
  start``, ``bin/worker start``) and stopped with ``stop``; whatever still
  runs from the buildout directory afterwards is killed by PID.
"""
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

from plone.app.asyncjobs.deployment.versions import write_versions_cfg
from plone.app.asyncjobs.engine.dispatcher import process_alive


#: The checkout (holds base.cfg, buildout.cfg, constraints.txt, setup.py).
ROOT = Path(__file__).resolve().parents[5]
#: Releases installed in the buildout venv (versions from constraints.txt).
BUILDOUT_VENV_PACKAGES = ("pip", "setuptools", "wheel", "packaging", "platformdirs",
                          "zc.buildout")
DEFAULT_PORTS = {
    "http-instance": 8080,
    "monitor-instance": 8081,
    "http-worker": 8082,
    "monitor-worker": 8083,
    "zeo-port": 8100,
}
PARTS = ("worker", "instance", "zeo")
SITE_ID = "Plone"
ADMIN = ("admin", "admin")
TEST_USER = ("asyncjobs-user", "asyncjobs-user-secret-1")
CREATE_SITE = Path(__file__).with_name("create_site.py")


class DeploymentError(RuntimeError):
    pass


def free_ports(count, host="127.0.0.1"):
    """``count`` distinct TCP ports nobody listens on right now."""
    sockets = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind((host, 0))
            sockets.append(sock)
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


def port_open(host, port, timeout=0.5):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _pins(root=ROOT):
    pins = {}
    for line in (root / "constraints.txt").read_text().splitlines():
        if "==" in line and not line.startswith("#"):
            name, version = line.split("==", 1)
            pins[name.strip().lower()] = version.strip()
    return pins


def ensure_buildout_venv(root=ROOT, venv=None, python=None, log=print):
    """Create (once) the venv holding zc.buildout; return its ``buildout``."""
    venv = Path(venv or root / ".venv-buildout")
    pins = _pins(root)
    requirements = [f"{name}=={pins[name.lower()]}" for name in BUILDOUT_VENV_PACKAGES]
    marker = venv / ".installed"
    script = venv / "bin" / "buildout"
    if marker.exists() and marker.read_text() == "\n".join(requirements) and script.exists():
        return script
    log(f"creating {venv} with {' '.join(requirements)}")
    if not (venv / "bin" / "python").exists():
        subprocess.run([python or sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
                    *requirements], check=True)
    marker.write_text("\n".join(requirements))
    return script


@dataclass
class Deployment:
    """One buildout directory with a ZEO server, an instance and a worker.

    ``config`` is the buildout configuration to run; without it a
    ``buildout.cfg`` extending the checkout's ``base.cfg`` is written into
    ``directory`` (with ``instance_zcml`` / ``worker_zcml`` as extra ZCML).
    """

    directory: Path
    ports: dict = field(default_factory=lambda: dict(DEFAULT_PORTS))
    config: Path = None
    host: str = "127.0.0.1"
    instance_zcml: str = ""
    worker_zcml: str = ""
    layout: str = "base.cfg"  # or "multi_db.cfg"
    root: Path = ROOT
    log: object = print

    def __post_init__(self):
        self.directory = Path(self.directory).resolve()
        self.ports = {**DEFAULT_PORTS, **(self.ports or {})}
        self.started = {}

    # -- building --------------------------------------------------------

    def write_config(self):
        if self.config is not None:
            return Path(self.config)
        self.directory.mkdir(parents=True, exist_ok=True)
        role = "multi_db.zcml" if self.layout == "multi_db.cfg" else "single_db.zcml"
        worker_zcml = (f'<include package="plone.app.asyncjobs" file="{role}" />\n'
                       + self.worker_zcml)
        lines = [
            "# written by plone.app.asyncjobs.deployment",
            "[buildout]",
            f"extends = {self.root / self.layout}",
            f"develop = {self.root}",
            f"checkout = {self.root}",
            f"eggs-directory = {self.root / '.cache' / 'buildout-eggs'}",
            "instance-zcml-additional =",
            *(f"    {line}" for line in self.instance_zcml.splitlines() if line.strip()),
            "worker-zcml-additional =",
            *(f"    {line}" for line in worker_zcml.splitlines() if line.strip()),
            "",
        ]
        config = self.directory / "buildout.cfg"
        config.write_text("\n".join(lines))
        return config

    def buildout(self):
        """Run buildout (offline-first: ``-N``, pinned, shared eggs)."""
        write_versions_cfg(self.root / "constraints.txt", self.root / "versions.cfg")
        script = ensure_buildout_venv(self.root, log=self.log)
        config = self.write_config()
        (self.root / ".cache" / "buildout-eggs").mkdir(parents=True, exist_ok=True)
        command = [str(script), "-N", "-c", str(config),
                   f"buildout:host={self.host}",
                   *(f"buildout:{key}={value}" for key, value in sorted(self.ports.items()))]
        started = time.monotonic()
        self.log(f"running buildout in {self.directory} (first run: a few minutes)")
        result = subprocess.run(command, cwd=self.directory, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        (self.directory / "var").mkdir(exist_ok=True)
        (self.directory / "var" / "buildout.log").write_text(result.stdout)
        if result.returncode:
            raise DeploymentError(f"buildout failed ({result.returncode}):\n"
                                  + result.stdout[-5000:])
        self.log(f"buildout done in {time.monotonic() - started:.1f} s")
        return time.monotonic() - started

    # -- processes -------------------------------------------------------

    def bin(self, name):
        return self.directory / "bin" / name

    def url(self, part="instance", path=""):
        return f"http://{self.host}:{self.ports['http-' + part]}/{path}"

    def _ctl(self, part, action, check=True, timeout=120):
        result = subprocess.run([str(self.bin(part)), action], cwd=self.directory,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, timeout=timeout)
        if check and result.returncode:
            raise DeploymentError(f"bin/{part} {action} failed:\n{result.stdout}")
        return result.stdout

    def pid(self, part):
        """PID of the part's server process (``var/zeo.pid``, ``var/<part>/Z4.pid``)."""
        for pidfile in (self.directory / "var" / f"{part}.pid",
                        self.directory / "var" / part / "Z4.pid"):
            try:
                pid = int(pidfile.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            if process_alive(pid):
                return pid
        return None

    def start_zeo(self, timeout=60):
        self._ctl("zeo", "start")
        self._wait(lambda: port_open(self.host, self.ports["zeo-port"]), timeout,
                   "ZEO server", "zeo")
        self._remember("zeo")

    def create_site(self, title="plone.app.asyncjobs demo"):
        """Create the Plone site (if missing) with the add-on and the test user."""
        env = dict(os.environ, ASYNCJOBS_SITE_ID=SITE_ID, ASYNCJOBS_SITE_TITLE=title,
                   ASYNCJOBS_USER=TEST_USER[0], ASYNCJOBS_PASSWORD=TEST_USER[1])
        env.pop("ZC_ASYNC_UUID", None)
        started = time.monotonic()
        result = subprocess.run([str(self.bin("instance")), "run", str(CREATE_SITE)],
                                cwd=self.directory, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, timeout=600)
        (self.directory / "var" / "create_site.log").write_text(result.stdout)
        if result.returncode or "ASYNCJOBS-SITE-READY" not in result.stdout:
            raise DeploymentError("site creation failed:\n" + result.stdout[-5000:])
        self.log(f"site ready in {time.monotonic() - started:.1f} s")

    def start(self, create_site=True):
        self.start_zeo()
        if create_site:
            self.create_site()
        self._ctl("instance", "start")
        self._remember("instance")
        self._ctl("worker", "start")
        self._remember("worker")
        for part in ("instance", "worker"):
            self._wait(lambda part=part: self._http_answers(self.url(part)), 180,
                       f"{part} HTTP {self.url(part)}", part)
            self._wait(lambda part=part: port_open(self.host, self.ports["monitor-" + part]),
                       60, f"{part} monitor", part)

    def _remember(self, part):
        pid = self.pid(part)
        if pid:
            self.started[part] = pid

    @staticmethod
    def _http_answers(url):
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                response.read()
            return True
        except urllib.error.HTTPError:
            return True  # an answer, even 401/404
        except OSError:
            return False

    def _wait(self, condition, timeout, what, part):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if condition():
                return
            self._remember(part)
            time.sleep(0.2)
        raise DeploymentError(f"{what} not ready after {timeout} s; "
                              f"see {self.directory / 'var' / 'log' / (part + '.log')}:\n"
                              + self.log_tail(part))

    def log_tail(self, part, chars=3000):
        try:
            return (self.directory / "var" / "log" / f"{part}.log").read_text()[-chars:]
        except OSError:
            return "(no log)"

    # -- stopping --------------------------------------------------------

    def _own_processes(self):
        """PIDs of processes running programs of this buildout directory."""
        mine = []
        marker = str(self.directory / "parts") + "/"
        bindir = str(self.directory / "bin") + "/"
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in cmdline or bindir in cmdline:
                mine.append(int(entry.name))
        return mine

    def stop(self, timeout=60):
        """Stop worker, instance and ZEO; kill what survives; return leftovers killed."""
        for part in PARTS:
            self._remember(part)
            if self.bin(part).exists():
                try:
                    self._ctl(part, "stop", check=False, timeout=timeout)
                except subprocess.TimeoutExpired:
                    pass
        pids = set(self.started.values()) | set(self._own_processes())
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and any(process_alive(pid) for pid in pids):
            time.sleep(0.1)
        killed = [pid for pid in pids if process_alive(pid)]
        for pid in killed:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        for pid in killed:
            deadline = time.monotonic() + 10
            while process_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
        self.started.clear()
        return killed


def monitor_command(host, port, command, timeout=30):
    """Send one monitor command (like ``echo CMD | nc -N host port``)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(command.encode() + b"\n")
        sock.shutdown(socket.SHUT_WR)
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode()


def monitor_json(host, port, command, timeout=30):
    text = monitor_command(host, port, command, timeout)
    start = text.find("{")
    if start < 0:
        raise DeploymentError(f"no JSON in the answer to {command!r}: {text!r}")
    return json.JSONDecoder().raw_decode(text[start:])[0]
