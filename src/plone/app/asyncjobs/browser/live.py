"""``@@asyncjobs-live?ids=1,2,3``: the facts of some jobs, as JSON.

``controlpanel.js`` polls it for the unfinished jobs of the page it runs
on.  The answer is ``{"jobs": [...], "missing": [...]}``: the
:func:`.inspection.describe` facts of each job found, with the ``badge``
the page shows for it (:meth:`.controlpanel.PanelView.badge`), and the ids of those
not found (removed, never jobs, or jobs of another site).  At most :data:`MAX_IDS` ids; more, or
none, give status 400 and ``{"error": ...}``.
"""
import json

from plone.app.asyncjobs import inspection
from plone.app.asyncjobs.browser.controlpanel import PanelView
from plone.app.asyncjobs.browser.controlpanel import without_tracebacks


#: The most jobs one request asks about: a full page of a list.
MAX_IDS = inspection.MAX_PAGE_SIZE


class LiveView(PanelView):
    """Facts of the jobs named by ``ids`` (comma-separated)."""

    @without_tracebacks
    def __call__(self):
        response = self.request.response
        response.setHeader("Content-Type", "application/json")
        response.setHeader("Cache-Control", "no-store")
        ids = self.request.form.get("ids")
        ids = [text for text in ids.split(",") if text] if isinstance(ids, str) else []
        if not 0 < len(ids) <= MAX_IDS:
            response.setStatus(400)
            return json.dumps({"error": f"ids: give 1 to {MAX_IDS} job ids, comma-separated"})
        scope = self.scope
        jobs, missing = [], []
        for text in dict.fromkeys(ids):
            try:
                facts = inspection.describe(inspection.get_job(self.queues, text, scope))
                jobs.append({**facts, "badge": self.badge(facts)})
            except LookupError:
                missing.append(text)
        return json.dumps({"jobs": jobs, "missing": missing})
