"""Browser views: the control panel for jobs and the demo page."""
