"""How long the job control panel takes with 100,000 jobs in the database.

Everything is measured in the same run: a Plone site (plone.app.testing's
layers, with a WSGI server and a running dispatcher) is filled first with
a small number of finished jobs (the baseline) and then with many more;
each time, the pages are fetched over HTTP as a Manager, with warm caches
and with the ZODB caches emptied before each fetch, and the median of
several fetches is printed, with its ratio to the baseline's.  Plone's own
Site Setup page is fetched too, for scale; and the queries behind the
pages are timed in the process, without Plone's rendering around them.

The jobs are made like those the Plone service queues (the same function,
site and user for all of them, which is all a listing looks at), and are
marked finished directly rather than run, so that filling the database
takes a minute rather than an hour.  One job in ten failed.

The target of the control-panel issue: a page with 100,000 jobs renders in
well under a second.

Usage: python bench/jobs_page.py [--jobs 100000] [--baseline 100] [--repeat 5]
"""
import argparse
import statistics
import time
from datetime import timedelta

import requests
import transaction
from plone.app.testing import SITE_OWNER_NAME
from plone.app.testing import SITE_OWNER_PASSWORD
from zope.testrunner.runner import gather_layers
from zope.testrunner.runner import order_by_bases

from plone.app.asyncjobs import api as jobs_api
from plone.app.asyncjobs import inspection
from plone.app.asyncjobs.engine import failure
from plone.app.asyncjobs.engine.clock import utcnow
from plone.app.asyncjobs.engine.testing.waiting import wait_until
from plone.app.asyncjobs.service.jobs import ContextJob
from plone.app.asyncjobs.testing import ASYNCJOBS_FUNCTIONAL_TESTING
from plone.app.asyncjobs.tests import jobs


#: What the pages ask of :mod:`plone.app.asyncjobs.inspection`, timed in
#: the process (no HTTP, no template) to separate it from Plone's rendering.
QUERIES = {
    "overview": None,
    "completed, first page": {"state": "completed"},
    "failed, first page": {"state": "failed"},
    "completed, oldest first": {"state": "completed", "sort": "reverse"},
    "free-text search": {"state": "completed", "text": "no-such-text"},
}
PAGES = {
    "Plone's Site Setup (reference)": "@@overview-controlpanel",
    "overview": "@@asyncjobs-controlpanel",
    "completed, first page": "@@asyncjobs-jobs?state=completed",
    "failed, first page": "@@asyncjobs-jobs?state=failed",
    "completed, oldest first": "@@asyncjobs-jobs?state=completed&sort=reverse",
    "free-text search": "@@asyncjobs-jobs?state=completed&text=no-such-text",
}
BATCH = 5000


def set_up(layer):
    gathered = []
    gather_layers(layer, gathered)
    ordered = order_by_bases(gathered)
    for each in ordered:
        each.setUp()
    for each in ordered:
        each.testSetUp()
    return ordered


def tear_down(ordered):
    for each in reversed(ordered):
        each.testTearDown()
    for each in reversed(ordered):
        each.tearDown()


def add_finished_jobs(layer, count):
    """Add ``count`` finished jobs to the history of the dispatcher's agent."""
    portal = layer["portal"]
    queues = jobs_api.get_queues(portal)
    dispatchers = queues[""].dispatchers
    wait_until(lambda: len(dispatchers) == 1, seconds=30, sync=transaction.begin)
    [record] = dispatchers.values()
    agent = record["main"]
    template = ContextJob(jobs.add, portal, 1)
    end = utcnow()
    for start in range(0, count, BATCH):
        for number in range(start, min(start + BATCH, count)):
            job = ContextJob.__new__(ContextJob)
            job.__setstate__(dict(template.__getstate__()))
            job._callable = job._call_in_context
            job.args = type(template.args)([number])
            job.kwargs = type(template.kwargs)()
            job.annotations = type(template.annotations)()
            portal._p_jar.add(job)
            finished = end - timedelta(seconds=count - number)
            job.active_start = finished - timedelta(milliseconds=5)
            result = (failure.capture(ValueError(f"job {number} failed"))
                      if number % 10 == 0 else number)
            # What a worker stores when the job returns (bench only).
            job._result, job._status_id, job.active_end = result, 3, finished
            job.parent = agent
            agent.completed.add(job, finished)
        transaction.commit()


def fetch_times(layer, repeat, cold):
    """Median seconds per page; ``cold``: with the ZODB caches emptied
    before each fetch (every object, Plone's too, is loaded again)."""
    base = f"http://{layer['host']}:{layer['port']}/plone/"
    session = requests.Session()
    session.auth = (SITE_OWNER_NAME, SITE_OWNER_PASSWORD)
    times = {}
    for name, path in PAGES.items():
        session.get(base + path, timeout=60).raise_for_status()  # warm-up
        samples = []
        for _ in range(repeat):
            if cold:
                layer["zodbDB"].cacheMinimize()
            started = time.perf_counter()
            response = session.get(base + path, timeout=60)
            samples.append(time.perf_counter() - started)
            response.raise_for_status()
        times[name] = statistics.median(samples)
    return times


def query_times(layer, repeat):
    """Median seconds per query, cold caches."""
    queues = jobs_api.get_queues(layer["portal"])
    connection = queues._p_jar
    times = {}
    for name, params in QUERIES.items():
        samples = []
        for _ in range(repeat):
            transaction.begin()
            connection.cacheMinimize()
            started = time.perf_counter()
            if params is None:
                inspection.overview(queues)
            else:
                inspection.JobQuery(params).run(queues)
            samples.append(time.perf_counter() - started)
        times[name] = statistics.median(samples)
    return times


def measure(layer, repeat):
    return {"warm": fetch_times(layer, repeat, cold=False),
            "cold": fetch_times(layer, repeat, cold=True),
            "queries": query_times(layer, repeat)}


def report(title, names, baseline, loaded, sizes):
    print(f"\n{title}")
    print(f"{'':32} {sizes[0]:>10} jobs {sizes[1]:>10} jobs   ratio")
    for name in names:
        before, after = baseline[name], loaded[name]
        print(f"{name:32} {before * 1000:>12.1f} ms {after * 1000:>12.1f} ms"
              f"   {after / before:5.2f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--baseline", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=5)
    options = parser.parse_args()
    layer = ASYNCJOBS_FUNCTIONAL_TESTING
    ordered = set_up(layer)
    try:
        add_finished_jobs(layer, options.baseline)
        baseline = measure(layer, options.repeat)
        started = time.perf_counter()
        add_finished_jobs(layer, options.jobs - options.baseline)
        filled = time.perf_counter() - started
        loaded = measure(layer, options.repeat)
    finally:
        tear_down(ordered)
    print(f"filled the database with {options.jobs} finished jobs in {filled:.0f} s")
    sizes = (options.baseline, options.jobs)
    median = f"median of {options.repeat}"
    report(f"pages over HTTP, warm caches ({median})", PAGES,
           baseline["warm"], loaded["warm"], sizes)
    report(f"pages over HTTP, ZODB caches emptied before each fetch ({median})", PAGES,
           baseline["cold"], loaded["cold"], sizes)
    report(f"their queries in the process, caches emptied ({median})", QUERIES,
           baseline["queries"], loaded["queries"], sizes)

if __name__ == "__main__":
    main()
