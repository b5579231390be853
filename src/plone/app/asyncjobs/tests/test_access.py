"""The rules of :mod:`plone.app.asyncjobs.access`: the site of a job, scopes,
and who may make a job run again as the user who queued it."""
import pytest
from plone import api
from plone.app.testing import TEST_USER_ID
from plone.app.testing import TEST_USER_NAME
from plone.app.testing import login
from plone.app.testing import logout
from plone.app.testing import setRoles

from plone.app.asyncjobs import access
from plone.app.asyncjobs import api as jobs_api
from plone.app.asyncjobs.engine.job import Job
from plone.app.asyncjobs.service.jobs import ContextJob
from plone.app.asyncjobs.tests import jobs


def as_user(portal, user_id, roles):
    """Log in ``user_id`` of the site (created if missing) with ``roles``."""
    if api.user.get(userid=user_id) is None:
        api.user.create(email=f"{user_id}@example.org", username=user_id, password="pw-12345678")
    setRoles(portal, user_id, roles)
    login(portal, user_id)


def test_a_job_belongs_to_its_site_and_so_do_its_callbacks_and_composites(portal):
    job = jobs_api.queue_job(jobs.add, portal, 1)
    [callback] = job.callbacks
    serial = jobs_api.queue_serial_jobs(jobs_api.make_job(jobs.add, portal, 2))
    assert access.job_site(job) == access.job_site(callback) == ("", "plone")
    assert access.job_site(serial) == ("", "plone")
    engine_job = jobs_api.get_queue().put(Job(max, 1, 2))
    assert access.job_site(engine_job) is None
    site = access.Scope.of_site(portal)
    assert site.includes(job) and not site.includes(engine_job)
    assert access.Scope(("", "other")).includes(job) is False
    assert access.DATABASE.includes(job) and access.DATABASE.includes(engine_job)


def test_the_user_who_queued_a_job_may_run_it_again(portal):
    job = jobs_api.queue_job(jobs.add, portal, 1)
    access.check_run_as(job, portal)  # the test user, a Member


def test_a_job_queued_by_anonymous_may_be_run_again_by_anyone(portal):
    logout()
    job = jobs_api.queue_job(jobs.add, portal, 1)
    login(portal, TEST_USER_NAME)
    access.check_run_as(job, portal)


def test_a_site_administrator_may_run_an_editors_job_but_a_reviewer_may_not(portal):
    setRoles(portal, TEST_USER_ID, ["Manager"])
    as_user(portal, "editor", ["Member", "Editor"])
    job = jobs_api.queue_job(jobs.add, portal, 1)
    login(portal, TEST_USER_NAME)
    as_user(portal, "reviewer", ["Member", "Reviewer"])
    with pytest.raises(access.RunAsRefused, match="with the roles Editor that you do not have"):
        access.check_run_as(job, portal)
    login(portal, TEST_USER_NAME)
    as_user(portal, "siteadmin", ["Member", "Site Administrator"])
    access.check_run_as(job, portal)  # Site Administrators may delegate Editor


def test_a_site_administrator_may_not_run_a_managers_job(portal):
    setRoles(portal, TEST_USER_ID, ["Manager"])
    job = jobs_api.queue_job(jobs.add, portal, 1)
    as_user(portal, "siteadmin", ["Member", "Site Administrator"])
    with pytest.raises(access.RunAsRefused, match="'test_user_1_'.*Manager"):
        access.check_run_as(job, portal)


def test_a_job_of_a_deleted_user_runs_again_for_nobody(portal):
    setRoles(portal, TEST_USER_ID, ["Manager"])
    as_user(portal, "gone", ["Member"])
    job = jobs_api.queue_job(jobs.add, portal, 1)
    login(portal, TEST_USER_NAME)
    api.user.delete(username="gone")
    with pytest.raises(access.RunAsRefused, match="does not exist any more"):
        access.check_run_as(job, portal)


def test_in_a_single_site_database_a_site_manager_manages_workers(portal):
    setRoles(portal, TEST_USER_ID, ["Manager"])
    login(portal, TEST_USER_NAME)
    assert access.may_manage_workers(portal) and not access.shares_database(portal)
    setRoles(portal, TEST_USER_ID, ["Site Administrator"])
    login(portal, TEST_USER_NAME)
    assert not access.may_manage_workers(portal)
    with pytest.raises(access.ScopeRefused):
        access.scope_for(portal, database_wide=True)


def test_a_callback_recorded_for_a_manager_keeps_a_site_administrator_from_a_retry(portal):
    # A copy runs the job's callbacks, each as the user it recorded: a
    # Site Administrator retrying an editor's job to which a Manager's
    # callback was added made code run as that Manager.
    setRoles(portal, TEST_USER_ID, ["Manager"])
    as_user(portal, "editor", ["Member", "Editor"])
    job = jobs_api.queue_job(jobs.add, portal, 1)
    login(portal, TEST_USER_NAME)  # a Manager
    job.add_callback(ContextJob(jobs.add, portal, 2))
    as_user(portal, "siteadmin", ["Member", "Site Administrator"])
    with pytest.raises(access.RunAsRefused, match="'test_user_1_'.*Manager"):
        access.check_run_as(job, portal)
    wrapper = Job(job.callbacks[-1])  # a job calling the Manager's job
    with pytest.raises(access.RunAsRefused, match="'test_user_1_'.*Manager"):
        access.check_run_as(wrapper, portal)
