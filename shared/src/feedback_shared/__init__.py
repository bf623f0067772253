"""Common code for the feedback pipeline's services: events, topics, settings and adapters."""
