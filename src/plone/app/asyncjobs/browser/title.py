"""The browser tab's title on the pages of the job control panel.

Plone's title viewlet gives every view of the site root the site's title
alone, so all the panel's pages would share one tab title.  This one puts
the page's own title (``PanelView.page_title``) first: "Job 12 — Plone site".
"""
from html import escape

from plone.app.layout.viewlets.common import TitleViewlet
from zope.i18n import translate


class PanelTitleViewlet(TitleViewlet):
    """``<title>``: the panel page's title, then the site's."""

    def update(self):
        super().update()
        page = translate(self.view.page_title, context=self.request)
        self.site_title = self.sep.join([escape(page), self.site_title])
