"""The ``metrics`` command, asked over a real TCP connection of a monitor
server, about a real dispatcher that ran jobs (see `.engine_setup`)."""

from prometheus_client.parser import text_string_to_metric_families

from plone.app.asyncjobs.monitor.metrics_command import metrics
from plone.app.asyncjobs.monitor.tests.client import ask
from plone.app.asyncjobs.monitor.tests.engine_setup import THIS
from plone.app.asyncjobs.monitor.tests.engine_setup import monitor_thread  # noqa: F401
from plone.app.asyncjobs.monitor.tests.engine_setup import worker  # noqa: F401


SETUP = "plone.app.asyncjobs.monitor.tests.engine_setup"


def samples(text):
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples}


def test_metrics_shows_the_dispatchers_metrics_in_prometheus_text(
        worker, monitor_thread):  # noqa: F811
    address = monitor_thread({"metrics": metrics})
    found = samples(ask(address, "metrics\n"))
    labels = (("callable", f"{SETUP}.succeed"), ("dispatcher", str(THIS)), ("queue", ""))
    assert found["asyncjobs_jobs_completed_total", labels] == 1
    assert found["asyncjobs_jobs_failed_total",
                 (("callable", f"{SETUP}.fail"), ("dispatcher", str(THIS)), ("queue", ""))] == 1
    assert found["asyncjobs_dispatcher_up", (("dispatcher", str(THIS)),)] == 1
    database = worker.db.database_name
    assert found["asyncjobs_queue_jobs",
                 (("database", database), ("queue", "other"), ("state", "pending"))] == 1
    assert "as planned" not in ask(address, "metrics\n")  # no arguments, no results


def test_help_metrics_describes_it(monitor_thread):  # noqa: F811
    address = monitor_thread({"metrics": metrics})
    assert ask(address, "help metrics\n").startswith(
        "Help for metrics:\n\nShow this process's job metrics, in the Prometheus text format.")
