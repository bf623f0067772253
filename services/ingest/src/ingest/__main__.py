"""``python -m ingest``: run the ingest service."""

from feedback_shared.serve import serve
from ingest.config import get_settings
from ingest.main import create_app

if __name__ == "__main__":
    serve("ingest", get_settings(), create_app)
