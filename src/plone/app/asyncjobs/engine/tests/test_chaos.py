"""The short chaos suite (``python -m plone.app.asyncjobs.engine.testing.chaos --short``).

Kill storms (of jobs without and with callbacks), jobs with arguments
that cannot be loaded, and jobs past their time limits, against a real ZEO server and two real worker
processes; the jobs of each scenario take turns between the default retry
policy and ``NeverRetry``.  Runs are
counted from files the jobs write, not from the database; see
:mod:`plone.app.asyncjobs.engine.testing.chaos` and docs/reliability.rst.
"""
import pytest

from plone.app.asyncjobs.engine.testing import chaos


@pytest.mark.parametrize("scenario", chaos.SHORT_SCENARIOS)
def test_nothing_lost_stranded_or_uncounted(scenario, tmp_path):
    rows = chaos.run_scenario(scenario, chaos.POLICIES, chaos.SHORT, tmp_path / "chaos")
    report = "\n".join([chaos.Row.header(), *(row.line() for row in rows),
                        *(f"{row.policy}: {detail}" for row in rows for detail in row.details)])
    for row in rows:
        assert row.lost == 0, report
        assert row.stranded == 0, report
        assert row.never_ran_failed == 0, report
        assert row.uncounted == 0, "runs not counted as attempts\n" + report
        assert row.under_way == 0, "runs still under way, their jobs completed\n" + report
