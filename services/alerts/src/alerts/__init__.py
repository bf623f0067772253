"""The alerts service: negative feedback becomes a case for the right CSM, delivered through an outbox."""
