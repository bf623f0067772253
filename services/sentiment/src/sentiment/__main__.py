"""``python -m sentiment``: run the sentiment service."""

from sentiment.config import get_settings
from sentiment.main import create_app
from feedback_shared.serve import serve

if __name__ == "__main__":
    serve("sentiment", get_settings(), create_app)
