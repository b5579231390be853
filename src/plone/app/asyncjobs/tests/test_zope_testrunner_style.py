"""The layers work for unittest test cases (zope.testrunner style) too."""
import unittest

from plone.app.asyncjobs import api as jobs_api
from plone.app.asyncjobs.testing import ASYNCJOBS_INTEGRATION_TESTING
from plone.app.asyncjobs.testing import wait_for_result
from plone.app.asyncjobs.tests import jobs


class TestWithLayer(unittest.TestCase):
    layer = ASYNCJOBS_INTEGRATION_TESTING

    def test_a_job_runs(self):
        portal = self.layer["portal"]
        job = jobs_api.queue_job(jobs.add, portal, 1, 2)
        self.assertEqual(wait_for_result(job), 3)
        self.assertTrue(self.layer["asyncjobsDispatcher"].activated)
