"""Offline training and evaluation of the sentiment stage's heads (``make train-heads``, ``make eval``).

Kept apart from the runtime package ``sentiment``: the service never imports this package, so neither
scikit-learn, VADER nor the labelled data (``data/``) are needed to serve. This package imports the
runtime (the encoder, the heads' parsers) so that training embeds exactly as the service scores.
"""
