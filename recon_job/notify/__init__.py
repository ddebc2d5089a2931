"""Notification channels (email, Slack, generic webhook) behind one ``Transport`` interface."""
