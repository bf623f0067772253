"""``python -m ingest``: run the ingest service."""

from ingest.config import get_settings
from ingest.main import create_app
from feedback_shared.serve import serve

if __name__ == "__main__":
    serve("ingest", get_settings(), create_app)
