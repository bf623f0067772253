"""``python -m sentiment``: run the sentiment service."""

from feedback_shared.serve import serve
from sentiment.config import get_settings
from sentiment.main import create_app

if __name__ == "__main__":
    serve("sentiment", get_settings(), create_app)
