"""Scheduled reports: ``agentq beat`` runs each report of the schedules file as a batch."""
