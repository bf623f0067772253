"""The sentiment stage: language, sentiment, customer needs and urgency for every feedback item."""
