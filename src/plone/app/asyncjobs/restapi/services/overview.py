"""``GET @asyncjobs``: queues with counts, dispatchers, the last hour's work."""
from plone.app.asyncjobs import inspection
from plone.app.asyncjobs.restapi.services.dispatchers import with_links


def get_overview(service):
    facts = inspection.overview(service.queues, service.scope)
    facts["dispatchers"] = [with_links(service, d) for d in facts["dispatchers"]]
    return {"@id": service.url(), **facts}
