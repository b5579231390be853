"""The chaos suite: faults injected into real processes, runs counted outside ZODB.

``python -m plone.app.asyncjobs.engine.testing.chaos`` (``make chaos``) runs
every scenario with the default retry policy and with ``NeverRetry`` and
prints one table row per scenario and policy; ``--short`` runs the small
version that ``tests/test_chaos.py`` runs in ``make test``.  Each scenario
gets a fresh storage (a ZEO server, or a private PostgreSQL database for
RelStorage) and two worker processes (:class:`~.processes.WorkerProcess`),
and a directory under ``--directory`` with their logs.

Every run of a job appends a start line and, if the run returns, an end
line to a file of its own process (one ``write`` with ``O_APPEND`` each), so
runs are counted whatever the database says.  After the faults the harness
polls until every job is completed or the scenario's timeout passes, then
compares the run files with the jobs in the database:

lost
    not completed at the end, and not stranded (still pending, or gone);
stranded
    ``assigned``, ``active`` or ``callbacks`` at the end while no live
    process is running it (no run without an end line in a live worker);
ran > 1
    jobs with more than one run;
runs > attempts
    jobs with more runs than their ``attempts`` counter says;
never ran, failed
    jobs that failed without any run (jobs whose arguments cannot be
    loaded are meant to, and are not counted);
under way
    completed jobs with a run still going in a live process (no end line)
    once the harness waited up to :data:`RUNS_END_WITHIN` seconds for
    such runs to end;
overlap
    the longest time two runs of one job were both under way, not counting
    time when either process was stopped with SIGSTOP (a run that never
    ended ends when its process was killed, or at the end);
deaths
    siblings declared dead ("found dispatcher ... dead" in the workers'
    logs, each death once).
"""
import argparse
import collections
import contextlib
import dataclasses
import functools
import itertools
import os
import random
import re
import shutil
import signal
import socket
import sys
import threading
import time
import uuid
from pathlib import Path

import transaction
from ZODB.POSException import POSError

from plone.app.asyncjobs.engine import configure
from plone.app.asyncjobs.engine import local
from plone.app.asyncjobs.engine.exceptions import OutcomeUnknownError
from plone.app.asyncjobs.engine.failure import is_failure
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.status import ACTIVE
from plone.app.asyncjobs.engine.status import ASSIGNED
from plone.app.asyncjobs.engine.status import CALLBACKS
from plone.app.asyncjobs.engine.status import COMPLETED
from plone.app.asyncjobs.engine.testing.processes import ExitedAtStart
from plone.app.asyncjobs.engine.testing.processes import WorkerProcess
from plone.app.asyncjobs.engine.testing.zeo import ZEOServer
from plone.app.asyncjobs.engine.transactions import ClientDisconnected
from plone.app.asyncjobs.engine.transactions import retry_conflicts


#: ``retry_policy_factory`` of the jobs, by the name shown in the table.
POLICIES = {"default": None, "NeverRetry": "never"}

#: Worker settings: a death is noticed within seconds, so outages and
#: pauses "longer than the death interval" stay short.
WORKER_OPTIONS = dict(poll_interval=0.2, agent_size=3, ping_interval=0.5,
                      ping_death_interval=3)
DEATH_INTERVAL = WORKER_OPTIONS["ping_death_interval"]
OUTAGE_SECONDS = DEATH_INTERVAL + 2

#: Seconds the harness waits, once every job is completed, for the runs
#: still under way in live processes to end (see "under way").
RUNS_END_WITHIN = 15
#: The time limit and grace period of the jobs of the time-limits scenario.
LIMIT_SECONDS = 1.0
GRACE_SECONDS = 0.5

#: Jobs added to a kill storm whenever fewer are left to run.
STORM_BACKLOG = 500
#: Jobs the harness queues per commit (smaller commits conflict less with
#: the claims of the draining workers).
QUEUE_BATCH = 50

# A sibling declared dead; a retried commit logs the same death again.
_DEATH = re.compile(r"found dispatcher (\S+) dead \(last ping ([^)]*)\)")
_STUCK = (ASSIGNED, ACTIVE, CALLBACKS)
_DISCONNECTED = tuple(e for e in (ClientDisconnected, POSError, OSError) if e)


# -- job functions (imported by name in the workers) ---------------------------

def run(directory, number, seconds=0.0, *ignored):
    """Record a run of job ``number``, take ``seconds``, record its end.

    A long run returns early when the engine asks it to stop.
    """
    token = uuid.uuid4().hex[:12]
    _append(directory, f"start {number} {token} {time.time():.6f}")
    deadline = time.time() + seconds
    # Wall time: a paused process ends late, not later.
    while time.time() < deadline and not local.stop_requested():
        time.sleep(min(0.1, seconds))
    _append(directory, f"end {number} {token} {time.time():.6f}")
    return number


def spin(directory, number, seconds=0.0, *ignored):
    """Record a run of job ``number``, then compute in Python for
    ``seconds`` without ever asking whether to stop: only an interruption
    (see :mod:`..timeouts`) or its process's end stops it.  Its end is
    recorded however it ends."""
    token = uuid.uuid4().hex[:12]
    _append(directory, f"start {number} {token} {time.time():.6f}")
    try:
        deadline = time.time() + seconds
        while time.time() < deadline:
            pass
        return number
    finally:
        _append(directory, f"end {number} {token} {time.time():.6f}")


def slow_callback(seconds, result):
    """A callback that takes ``seconds``, so that kills also come while
    callbacks run (their runs are not recorded: their jobs' statuses tell
    whether they completed)."""
    time.sleep(seconds)
    return result


def poison(directory, number, *ignored):
    """Record a run, then end the worker process at once."""
    _append(directory, f"start {number} {uuid.uuid4().hex[:12]} {time.time():.6f}")
    os._exit(1)


def _refuse_to_load():
    raise ValueError("this argument pickles but cannot be loaded")


class Unloadable:
    """An argument that pickles, but loading it raises ``ValueError``."""

    def __reduce__(self):
        return (_refuse_to_load, ())


def _append(directory, line):
    path = os.path.join(directory, f"{os.getpid()}.runs")
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(descriptor, (line + "\n").encode())
    finally:
        os.close(descriptor)


@dataclasses.dataclass
class Run:
    """One run of a job: its process, and when it started and returned."""
    pid: int
    start: float
    end: float = None


def read_runs(directory):
    """Return ``{job number: [Run, ...]}`` from the run files in ``directory``."""
    runs, by_token = collections.defaultdict(list), {}
    for path in Path(directory).glob("*.runs"):
        pid = int(path.stem)
        for line in path.read_text().splitlines():
            kind, number, token, moment = line.split()
            if kind == "start":
                by_token[token] = Run(pid, float(moment))
                runs[int(number)].append(by_token[token])
            else:
                by_token[token].end = float(moment)
    return runs


# -- storages and workers ------------------------------------------------------

class TCPProxy:
    """Forwards a free loopback port to ``target``; :meth:`cut` drops every
    connection and refuses new ones until :meth:`restore`, as a restarting
    server would."""

    def __init__(self, target):
        self.target = target
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._sockets, self._lock = set(), threading.Lock()
        self._serve()

    def _serve(self):
        threading.Thread(target=self._accept, args=(self._listener,), daemon=True,
                         name="chaos proxy").start()

    def _accept(self, listener):
        while True:
            try:
                client, _ = listener.accept()
                upstream = socket.create_connection(self.target)
            except OSError:
                if listener.fileno() == -1:
                    return  # cut
                continue
            with self._lock:
                self._sockets.update((client, upstream))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True,
                                 name="chaos proxy").start()

    def _pump(self, source, sink):
        with contextlib.suppress(OSError):
            while data := source.recv(65536):
                sink.sendall(data)
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)

    def cut(self):
        # shutdown() wakes the thread blocked in accept(); close() would not.
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for end in sockets:
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()

    def restore(self):
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._serve()


@dataclasses.dataclass
class Outage:
    """How a storage becomes unreachable for the workers, and comes back."""
    name: str
    begin: callable
    end: callable


@contextlib.contextmanager
def zeo_storage(directory):
    """Yield ``(outage, worker storage config, db)`` for a new ZEO server;
    the outage kills the server, and starts it again on its port."""
    server = ZEOServer(directory / "zeo")
    server.start()
    db = server.db()
    try:
        yield Outage("ZEO server killed", server.kill, server.start), \
            server.client_storage_config(), db
    finally:
        db.close()
        server.stop()


@contextlib.contextmanager
def postgres_storage(directory):
    """Yield ``(outage, worker storage config, db)`` for a new PostgreSQL
    database; the workers reach it through a :class:`TCPProxy`, the harness
    directly, and the outage cuts the proxy."""
    from plone.app.asyncjobs.engine.testing.postgres import PostgreSQLDatabase

    database = PostgreSQLDatabase().create()
    proxy = TCPProxy((database.host, database.port))
    db = database.db()
    try:
        yield Outage("PostgreSQL cut", proxy.cut, proxy.restore), \
            database.zconfig(port=proxy.port), db
    finally:
        db.close()
        proxy.cut()
        database.drop()


class Cluster:
    """Worker processes on one storage, their runs and their deaths."""

    def __init__(self, directory, storage_config, db, outage, policies, workers=2):
        self.outage = outage
        self.policies = policies
        self.policy_of = {}  # number -> policy name
        self.runs_directory = directory / "runs"
        self.runs_directory.mkdir(parents=True)
        configure.install_queues(db)
        self.manager = transaction.TransactionManager()
        self.connection = db.open(transaction_manager=self.manager)
        self.workers = [WorkerProcess(directory, storage_config, f"worker-{n}", **WORKER_OPTIONS)
                        for n in range(1, workers + 1)]
        self.ended = {}  # pid -> when it was killed, stopped or found gone
        self.paused = collections.defaultdict(list)  # pid -> [[SIGSTOP time, SIGCONT time]]
        self.jobs = {}  # number -> oid
        self.unloadable = set()

    def start(self):
        for worker in self.workers:
            worker.start()

    def close(self):
        for worker in self.workers:
            self.resume(worker)
            worker.kill()
        self.manager.abort()
        self.connection.close()

    def queue(self, count, seconds=0.0, function=run, unloadable=(), callbacks=False,
              timeout=None):
        """Queue ``count`` jobs, numbered on from those queued before; their
        retry policies take turns among the cluster's ``policies``; with
        ``callbacks``, each with a callback taking ``seconds`` too; with a
        ``timeout``, each limited to that many seconds."""
        first = len(self.jobs)

        def put(numbers):
            queue = configure.get_queue(self.connection)
            jobs = {}
            for number in numbers:
                extra = (Unloadable(),) if number - first in unloadable else ()
                jobs[number] = Job(function, str(self.runs_directory), number, seconds, *extra)
                self.policy_of[number] = self.policies[number % len(self.policies)]
                jobs[number].retry_policy_factory = POLICIES[self.policy_of[number]]
                if callbacks:
                    jobs[number].add_callback(Job(slow_callback, seconds))
                queue.put(jobs[number], timeout=timeout)
            return jobs

        for start in range(first, first + count, QUEUE_BATCH):
            numbers = range(start, min(start + QUEUE_BATCH, first + count))
            # The workers' claims write the queue too: a conflict is likely
            # while they drain, and must not end the suite.
            jobs = retry_conflicts(functools.partial(put, numbers), self.manager, "queueing jobs",
                                   attempts=1000)
            self.jobs.update((number, job._p_oid) for number, job in jobs.items())
        self.unloadable.update(first + index for index in unloadable)

    def runs(self):
        return read_runs(self.runs_directory)

    def running(self, number):
        """The worker running job ``number`` now (started, no end, alive)."""
        for one_run in self.runs().get(number, ()):
            if one_run.end is None and one_run.pid not in self.ended:
                return next(w for w in self.workers if w.pid == one_run.pid)
        return None

    def kill(self, worker, restart=True):
        self.ended[worker.pid] = time.time()
        worker.kill()
        if restart:
            worker.start()

    def pause(self, worker):
        os.kill(worker.pid, signal.SIGSTOP)
        self.paused[worker.pid].append([time.time(), None])

    def resume(self, worker):
        pauses = self.paused.get(worker.pid)
        if pauses and pauses[-1][1] is None:
            os.kill(worker.pid, signal.SIGCONT)
            pauses[-1][1] = time.time()

    def overlap(self, first, second):
        """Seconds during which runs ``first`` and ``second`` were both under
        way and neither of their processes was stopped (SIGSTOP)."""
        now = time.time()
        begin = max(first.start, second.start)
        end = min(one_run.end or self.ended.get(one_run.pid, now) for one_run in (first, second))
        stops = sorted((max(stop, begin), min(resume or now, end))
                       for one_run in (first, second)
                       for stop, resume in self.paused.get(one_run.pid, ()))
        running, reach = max(0.0, end - begin), begin
        for stop, resume in stops:  # subtract the union of the stops
            stop = max(stop, reach)
            if resume > stop:
                running -= resume - stop
                reach = resume
        return max(0.0, running)

    def restart_dead(self):
        """Restart workers whose process exited, as a supervisor would
        (again at the next call, if a job ends the new process at once)."""
        for worker in self.workers:
            if worker.process.poll() is not None:
                self.ended[worker.pid] = time.time()
                try:
                    worker.start()
                except ExitedAtStart:
                    self.ended[worker.pid] = time.time()

    def statuses(self):
        """``{number: job}`` as the database has them now; ``None`` while
        the storage is unreachable."""
        try:
            self.manager.begin()
            jobs = {number: self.connection.get(oid) for number, oid in self.jobs.items()}
            for job in jobs.values():
                job._p_activate()
            return jobs
        except _DISCONNECTED:
            self.manager.abort()
            return None

    def wait(self, timeout):
        """Poll until every job is completed or ``timeout`` passes,
        restarting dead workers."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.restart_dead()
            jobs = self.statuses()
            if jobs is not None and all(job.status == COMPLETED for job in jobs.values()):
                return
            time.sleep(0.5)

    def under_way(self):
        """The runs without an end in processes still alive."""
        return [one_run for job_runs in self.runs().values() for one_run in job_runs
                if one_run.end is None and one_run.pid not in self.ended]

    def wait_for_runs_to_end(self, timeout):
        """Poll until no run is under way in a live process, or ``timeout``
        passes: once every job is completed, a run still under way is one
        that nobody will ever look at (an abandoned attempt that was not
        stopped, or one stopping late)."""
        deadline = time.monotonic() + timeout
        while self.under_way() and time.monotonic() < deadline:
            time.sleep(0.2)

    def wait_for_runs(self, count, timeout=60):
        deadline = time.monotonic() + timeout
        while sum(map(len, self.runs().values())) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"fewer than {count} runs after {timeout} s")
            time.sleep(0.1)


# -- measuring -----------------------------------------------------------------

@dataclasses.dataclass
class Row:
    scenario: str
    policy: str
    jobs: int = 0
    runs: int = 0
    failed: int = 0
    lost: int = 0
    stranded: int = 0
    rerun: int = 0
    uncounted: int = 0
    unknown: int = 0
    never_ran_failed: int = 0
    overlap: float = 0.0
    under_way: int = 0
    deaths: int = 0
    details: list = dataclasses.field(default_factory=list)

    COLUMNS = (("scenario", 34), ("policy", 10), ("jobs", 6), ("runs", 6), ("failed", 6),
               ("lost", 5), ("stranded", 8), ("ran > 1", 7), ("runs > attempts", 15),
               ("outcome unknown", 15), ("never ran, failed", 17), ("overlap s", 9),
               ("under way", 9), ("deaths", 6))

    @classmethod
    def header(cls):
        return " | ".join(name.ljust(width) for name, width in cls.COLUMNS)

    def line(self):
        values = dataclasses.astuple(self)[:-1]
        return " | ".join(
            (f"{value:.3f}" if isinstance(value, float) else str(value)).ljust(width)
            for value, (_, width) in zip(values, self.COLUMNS))


def measure(cluster, scenario):
    """Compare the run files with the jobs in the database: one
    :class:`Row` per retry policy."""
    cluster.wait_for_runs_to_end(RUNS_END_WITHIN)
    while (jobs := cluster.statuses()) is None:
        time.sleep(0.5)
    runs = cluster.runs()
    rows = {name: Row(scenario, name) for name in cluster.policies}
    for number, job in jobs.items():
        _count(rows[cluster.policy_of[number]], cluster, number, job, runs.get(number, []))
    deaths = len({death for worker in cluster.workers if worker.log_path.exists()
                  for death in _DEATH.findall(worker.log_path.read_text())})
    for row in rows.values():
        row.deaths = deaths
    return list(rows.values())


def _count(row, cluster, number, job, job_runs):
    """Add job ``number`` and its runs to ``row``."""

    def note(kind):
        result = job.result
        outcome = f"failed: {result.getErrorMessage()}" if is_failure(result) else ""
        pids = [one_run.pid for one_run in job_runs]
        row.details.append(f"{kind}: job {number} {job._p_oid.hex()} {job.status} "
                           f"attempts {job.attempts} runs {len(pids)} {pids} {outcome}")

    row.jobs += 1
    row.runs += len(job_runs)
    live = [r for r in job_runs if r.end is None and r.pid not in cluster.ended]
    failed = job.status == COMPLETED and is_failure(job.result)
    row.failed += failed
    if job.status in _STUCK and not live:
        row.stranded += 1
        note("stranded")
    elif job.status != COMPLETED:
        row.lost += 1
        note("lost")
    if job.status == COMPLETED and live:
        row.under_way += 1
        note("under way")
    if len(job_runs) > 1:
        row.rerun += 1
        row.overlap = max([row.overlap] + [cluster.overlap(first, second) for first, second
                                           in itertools.combinations(job_runs, 2)])
    if len(job_runs) > job.attempts:
        row.uncounted += 1
        note("runs > attempts")
    # A job whose worker was found dead after its start was committed may
    # or may not have begun (a kill can fall between that commit and the
    # call); its failure says so, and claims nothing false.
    unknown = failed and bool(job.result.check(OutcomeUnknownError))
    if unknown:
        row.unknown += 1
        note("outcome unknown")
    elif failed and not job_runs and number not in cluster.unloadable:
        row.never_ran_failed += 1
        note("never ran, failed")


# -- scenarios -----------------------------------------------------------------

def kill_storm(cluster, size, callbacks=False):
    """A random worker SIGKILLed every 2-5 s and restarted with its UUID;
    jobs are added while kills remain, so that kills come mid-drain.  With
    ``callbacks``, every job has a callback (as the Plone service's jobs
    have), which kills interrupt too."""
    cluster.queue(size.storm_jobs, seconds=size.storm_job_seconds, callbacks=callbacks)
    cluster.start()
    for _ in range(size.kills):
        next_kill = time.monotonic() + random.uniform(2, 5)
        while time.monotonic() < next_kill:
            if len(cluster.jobs) - len(cluster.runs()) < STORM_BACKLOG:
                # Jobs run faster than kills come: keep work in the queue.
                cluster.queue(STORM_BACKLOG, seconds=size.storm_job_seconds,
                              callbacks=callbacks)
            cluster.restart_dead()
            time.sleep(0.2)
        cluster.kill(random.choice(cluster.workers))
    cluster.wait(size.timeout)
    return f"kill storm ({size.kills} kills{', callbacks' if callbacks else ''})"


def time_limits(cluster, size):
    """Jobs limited to LIMIT_SECONDS, one in 25 of them spinning in Python
    without ever asking whether to stop (abandoned after GRACE_SECONDS,
    then interrupted), while a random worker is SIGKILLed every 2-5 s and
    restarted."""
    def set_grace():
        configure.get_queue(cluster.connection).timeout_grace = GRACE_SECONDS

    retry_conflicts(set_grace, cluster.manager, "setting the grace period")
    for _ in range(size.limited_jobs // 25):
        cluster.queue(24, seconds=size.storm_job_seconds, timeout=LIMIT_SECONDS)
        cluster.queue(1, function=spin, seconds=size.timeout, timeout=LIMIT_SECONDS)
    cluster.start()
    kills = max(1, size.kills // 3)
    for _ in range(kills):
        time.sleep(random.uniform(2, 5))
        cluster.restart_dead()
        cluster.kill(random.choice(cluster.workers))
    cluster.wait(size.timeout)
    return f"time limits ({kills} kills)"


def storage_outage(cluster, size):
    """The storage goes away a quarter into a drain, for longer than the
    death interval, then comes back."""
    count = size.outage_jobs if cluster.outage.name.startswith("ZEO") else size.outage_jobs // 3
    cluster.queue(count)
    cluster.start()
    cluster.wait_for_runs(count // 4)
    cluster.outage.begin()
    time.sleep(OUTAGE_SECONDS)
    cluster.outage.end()
    cluster.wait(size.timeout)
    return f"{cluster.outage.name}, {OUTAGE_SECONDS} s outage"


def zombie(cluster, size, paused):
    """A worker SIGSTOPped for longer than the death interval 2 s into a
    long job, then SIGCONT: ``paused`` is "own" (the job's worker) or
    "sibling"."""
    cluster.queue(1, seconds=size.long_job_seconds)
    cluster.start()
    cluster.wait_for_runs(1)
    owner = cluster.running(0)
    victim = owner if paused == "own" else next(w for w in cluster.workers if w is not owner)
    time.sleep(2)
    cluster.queue(size.zombie_jobs)
    cluster.pause(victim)
    time.sleep(DEATH_INTERVAL + 5)
    cluster.resume(victim)
    cluster.wait(size.timeout + size.long_job_seconds)
    return f"zombie: {paused} worker paused {DEATH_INTERVAL + 5} s"


def poison_job(cluster, size):
    """One job ends its worker with ``os._exit(1)``, among ordinary jobs;
    dead workers are restarted."""
    cluster.queue(1, function=poison)
    cluster.queue(size.poison_jobs)
    cluster.start()
    cluster.wait(size.timeout * 2)
    return "poison job"


def unloadable_arguments(cluster, size):
    """Some jobs have an argument that pickles but cannot be loaded."""
    step = size.unloadable_jobs // 5 + 1  # odd: both policies get some when they take turns
    cluster.queue(size.unloadable_jobs, unloadable=set(range(0, size.unloadable_jobs, step)))
    cluster.start()
    cluster.wait(size.timeout)
    return "unloadable arguments"


@dataclasses.dataclass
class Size:
    storms: int = 3
    kills: int = 15
    storm_jobs: int = 3000
    storm_job_seconds: float = 0.01
    outage_jobs: int = 3000
    long_job_seconds: float = 20
    zombie_jobs: int = 200
    poison_jobs: int = 2000
    unloadable_jobs: int = 400
    limited_jobs: int = 1000
    timeout: float = 120
    #: Whether one run of a scenario serves every policy (its jobs take
    #: turns), rather than one run per policy.
    mix_policies: bool = False


FULL = Size()
SHORT = Size(storms=1, kills=3, storm_jobs=800, limited_jobs=500, timeout=60,
             mix_policies=True)

#: Scenario name -> (function, storage).
SCENARIOS = {
    "kill-storm": (kill_storm, zeo_storage),
    "kill-storm-callbacks": (functools.partial(kill_storm, callbacks=True), zeo_storage),
    "zeo-restart": (storage_outage, zeo_storage),
    "postgres-outage": (storage_outage, postgres_storage),
    "zombie-own": (functools.partial(zombie, paused="own"), zeo_storage),
    "zombie-sibling": (functools.partial(zombie, paused="sibling"), zeo_storage),
    "poison": (poison_job, zeo_storage),
    "unloadable": (unloadable_arguments, zeo_storage),
    "time-limits": (time_limits, zeo_storage),
}
SHORT_SCENARIOS = ("kill-storm", "kill-storm-callbacks", "unloadable", "time-limits")


def run_scenario(name, policies, size, directory):
    """Run one scenario in a fresh storage below ``directory``, its jobs
    taking turns among the retry ``policies`` (names of :data:`POLICIES`);
    return a :class:`Row` per policy."""
    function, storage = SCENARIOS[name]
    directory.mkdir(parents=True)
    with storage(directory) as (outage, storage_config, db):
        cluster = Cluster(directory, storage_config, db, outage, list(policies))
        try:
            return measure(cluster, function(cluster, size))
        finally:
            cluster.close()


def run_suite(directory, size, scenarios, policies=POLICIES, report=print):
    """Run ``scenarios`` for each policy; report each row as it is measured."""
    shutil.rmtree(directory, ignore_errors=True)
    report(Row.header())
    rows = []
    groups = [list(policies)] if size.mix_policies else [[name] for name in policies]
    for name in scenarios:
        repeats = size.storms if name.startswith("kill-storm") else 1
        for group in groups:
            for repeat in range(repeats):
                subdirectory = Path(directory) / f"{name}-{'-'.join(group)}-{repeat + 1}"
                for row in run_scenario(name, group, size, subdirectory):
                    rows.append(row)
                    report(row.line())
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(prog=f"python -m {__name__}",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--short", action="store_true", help="the small version run by make test")
    parser.add_argument("--scenario", action="append", choices=sorted(SCENARIOS),
                        help="run only these (repeatable)")
    parser.add_argument("--policy", action="append", choices=sorted(POLICIES))
    parser.add_argument("--directory", default="var/chaos",
                        help="logs and data (default %(default)s)")
    parser.add_argument("--details", action="store_true", help="list the jobs behind each count")
    options = parser.parse_args(argv)
    size = SHORT if options.short else FULL
    scenarios = options.scenario or (SHORT_SCENARIOS if options.short else list(SCENARIOS))
    rows = run_suite(Path(options.directory), size, scenarios, options.policy or POLICIES)
    if options.details:
        for row in rows:
            for detail in row.details:
                print(f"{row.scenario} / {row.policy}: {detail}")
    bad = sum(row.lost + row.stranded + row.never_ran_failed + row.uncounted + row.under_way
              for row in rows)
    return 1 if bad else 0


if __name__ == "__main__":
    # Jobs name their functions by module: run them from the real module,
    # not from __main__, which workers cannot import.
    from plone.app.asyncjobs.engine.testing import chaos
    sys.exit(chaos.main())
