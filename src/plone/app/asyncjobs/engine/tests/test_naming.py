"""Names of jobs: a job is named after what it was queued to call."""
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.engine.naming import abbreviated
from plone.app.asyncjobs.engine.naming import brief_repr
from plone.app.asyncjobs.engine.naming import dotted_name
from plone.app.asyncjobs.engine.naming import job_label
from plone.app.asyncjobs.engine.naming import job_name
from plone.app.asyncjobs.engine.tests import jobs


JOBS = "plone.app.asyncjobs.engine.tests.jobs"


class Wrapping(Job):
    """Calls ``func`` through a method of its own, as a Plone service job
    does (it passes the function its context first)."""

    def __init__(self, func, *args):
        self.func = func
        super().__init__(self._call_first, *args)

    def _call_first(self, *args):
        return self.func(*args)


def test_a_job_is_named_after_its_callable():
    job = Job(jobs.add, 1, 2)
    assert job_name(job) == job_label(job) == f"{JOBS}.add"


def test_a_wrapping_job_is_named_after_the_function_it_was_given():
    job = Wrapping(jobs.add, 1, 2)
    assert job_name(job) == job_label(job) == f"{JOBS}.add"


def test_a_method_is_named_by_its_instance_for_people_and_by_its_class_for_labels():
    method = jobs.Counter().increment
    job = Job(method)
    assert job_name(job) == dotted_name(method)
    assert job_name(job).endswith(".increment") and "Counter" in job_name(job)
    assert job_label(job) == f"{JOBS}.Counter.increment"


class BadRepr:
    def __repr__(self):
        raise RuntimeError("repr exploded")


def test_a_value_whose_repr_raises_is_named_by_its_class():
    # It failed the console's and the monitor's descriptions of its job.
    stand_in = f"<unrepresentable {__name__}.BadRepr: RuntimeError>"
    assert brief_repr(BadRepr()) == stand_in
    assert abbreviated(BadRepr()).startswith("<unrepresentable ")
    assert "echo(<unrepresentable " in repr(Job(jobs.echo, BadRepr()))
