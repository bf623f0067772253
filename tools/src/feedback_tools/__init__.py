"""Operator and developer tools (``feedbackctl``): the embedded dev stack, the demo feed, the importer,
topic replay, make bench, make chaos, the deploy check and the stand-in HTTP receiver. They may import
the services; nothing imports them at run time."""
