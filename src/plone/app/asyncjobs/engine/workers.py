"""Worker threads: the threads of one agent of one dispatcher.

Each thread holds its own ZODB connection for its whole life (so its object
cache stays warm).  A thread claims a job and starts it in one commit, runs
it, and immediately tries to claim the next one; only when its agent has
nothing to give does it wait, until the dispatcher wakes it (every poll, or
sooner through :meth:`Dispatcher.wake`).
"""
import threading
import time

import transaction
from ZODB.POSException import ConflictError

from plone.app.asyncjobs.engine import failure as failures
from plone.app.asyncjobs.engine import local
from plone.app.asyncjobs.engine.exceptions import BadStatusError
from plone.app.asyncjobs.engine.exceptions import ReassignedError
from plone.app.asyncjobs.engine.ids import object_id
from plone.app.asyncjobs.engine.log import events
from plone.app.asyncjobs.engine.log import trace
from plone.app.asyncjobs.engine.queue import KEY
from plone.app.asyncjobs.engine.status import ACTIVE
from plone.app.asyncjobs.engine.transactions import EXPLOSIVE
from plone.app.asyncjobs.engine.transactions import ClientDisconnected
from plone.app.asyncjobs.engine.transactions import backoff
from plone.app.asyncjobs.engine.transactions import retry_forever


CLAIM_ATTEMPTS = 5


class AgentWorkers:
    """The pool of worker threads for one agent; sized by the dispatcher."""

    def __init__(self, dispatcher, queue_name, agent_name):
        self.dispatcher = dispatcher
        self.queue_name = queue_name
        self.agent_name = agent_name
        self._condition = threading.Condition()
        self._wanted = 0
        self._threads = []
        self._wakes = 0
        self.waiting = 0

    @property
    def size(self):
        return self._wanted

    def alive(self):
        return [thread for thread in self._threads if thread.is_alive()]

    def set_size(self, size):
        """Run ``size`` threads: start missing ones; extra ones exit when idle."""
        with self._condition:
            self._wanted = size
            self._threads = self.alive()
            if len(self._threads) > size:
                # Like a wake, so that a thread between a claim and its wait
                # (which misses the notification) does not wait before exiting.
                self._wakes += 1
            while len(self._threads) < size:
                thread = WorkerThread(self)
                self._threads.append(thread)
                thread.start()
            self._condition.notify_all()

    def wake(self):
        """Make waiting threads try to claim a job now."""
        with self._condition:
            self._wakes += 1
            self._condition.notify_all()

    def _should_exit(self, thread):
        with self._condition:
            if self._threads.index(thread) >= self._wanted:
                self._threads.remove(thread)
                return True
            return False

    def _wakes_seen(self):
        with self._condition:
            return self._wakes

    def _wait(self, wakes_seen, timeout):
        with self._condition:
            if self._wakes != wakes_seen:
                return
            self.waiting += 1
            try:
                self._condition.wait(timeout)
            finally:
                self.waiting -= 1

    def join(self, timeout):
        """Wait up to ``timeout`` seconds for every thread to end; return the living."""
        deadline = time.monotonic() + timeout
        for thread in list(self._threads):
            thread.join(max(0, deadline - time.monotonic()))
        return self.alive()


class WorkerThread(threading.Thread):
    """Claims and runs jobs for its pool until told to exit."""

    def __init__(self, pool):
        super().__init__(
            name=f"asyncjobs worker {pool.queue_name!r}/{pool.agent_name}", daemon=True
        )
        self.pool = pool
        self.dispatcher = pool.dispatcher
        self.current_job = None

    def run(self):
        local.bind_worker(self.dispatcher, self.pool.agent_name)
        manager = transaction.TransactionManager()
        connection = self.dispatcher.db.open(transaction_manager=manager)
        try:
            finished = None
            while not self.pool._should_exit(self):
                wakes = self.pool._wakes_seen()
                committed, job = self._claim(connection, manager, finished)
                if committed:
                    finished = None
                if job is None:
                    self.pool._wait(wakes, self.dispatcher.poll_interval)
                else:
                    self._perform(job, manager)
                    finished = job
        finally:
            manager.abort()
            connection.close()

    def _agent(self, connection):
        try:
            queue = connection.root()[KEY][self.pool.queue_name]
            return queue.dispatchers[self.dispatcher.uuid][self.pool.agent_name]
        except KeyError:
            return None

    def _claim(self, connection, manager, finished):
        """Claim and start one job in one commit.

        The same commit moves ``finished`` (this thread's previous job) to
        its agent's history.  Returns ``(committed, job or None)``.
        """
        statistics = self.dispatcher.statistics
        for attempt in range(1, CLAIM_ATTEMPTS + 1):
            manager.begin()
            job = None
            try:
                agent = self._agent(connection)
                if agent is None:
                    manager.abort()
                    return False, None
                job = agent.claim_job(lane=self.dispatcher.next_lane(), finished=finished,
                                      exclude=self.dispatcher.unclaimable)
                if job is not None and not job.deadline_passed():
                    job.mark_active()
                manager.commit()
                if job is None:
                    statistics["empty claims"] += 1
                    return True, None
            except ConflictError:
                manager.abort()
                statistics["claim conflicts"] += 1
                continue
            except EXPLOSIVE:
                manager.abort()
                raise
            except ClientDisconnected:
                manager.abort()
                events.info("%s could not claim a job: disconnected", self.name)
                time.sleep(backoff(attempt))
                return False, None
            except Exception:
                manager.abort()
                if job is None:
                    events.critical("%s could not claim a job", self.name, exc_info=True)
                    time.sleep(backoff(attempt))
                    return False, None
                # A job this process cannot store (say, its callable cannot be
                # imported here) must not block the others: leave it pending,
                # visible to operators, and stop trying it in this process.
                self.dispatcher.unclaimable.add(object_id(job))
                events.critical("%s cannot claim job %s; leaving it pending",
                                self.name, object_id(job), exc_info=True)
            statistics["claims"] += 1
            # Load the arguments in one round trip while the job starts.
            connection.prefetch(job.args, job.kwargs)
            return True, job
        return False, None

    def _perform(self, job, manager):
        info = self.dispatcher.job_started(job, self.pool, self.name)
        self.current_job = info["id"]
        trace.info("%r starting in %s", job, self.name)
        try:
            job.run_claimed()
        except ReassignedError:
            manager.abort()
            info["reassigned"] = True
            events.error("%r was taken over by another worker; abandoning it", job)
        except BadStatusError:
            manager.abort()
            events.error("%r could not run", job, exc_info=True)
        except EXPLOSIVE:
            manager.abort()
            raise
        except Exception:
            manager.abort()
            events.critical("unexpected error running %r", job, exc_info=True)
            self._fail_abandoned(job, manager, failures.capture())
        finally:
            self.current_job = None
            self.dispatcher.job_finished(info, job)
            trace.info("%r completed in %s", job, self.name)

    def _fail_abandoned(self, job, manager, failure):
        """Store an engine error as the result, so the job is not left ACTIVE."""
        def store():
            if job.status == ACTIVE:
                job._set_result(failure)

        retry_forever(store, manager, f"recording the engine error of {job!r}")
