"""The loyalty service: points for repeat customers, credited once per event, on an append-only ledger."""
