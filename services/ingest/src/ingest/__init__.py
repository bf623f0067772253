"""The ingest service: every source in, validated, idempotent, durably handed to Kafka."""
