"""Delivery of the outbox: channels (signed webhooks, SMTP email, Slack-format chat)
and the worker that claims due messages, sends them and records what happened."""
