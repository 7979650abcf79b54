"""Alerts: what to tell a support lead, and delivering it to Slack, a webhook or the console."""
