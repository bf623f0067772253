"""``python -m loyalty``: run the loyalty service."""

from loyalty.config import get_settings
from loyalty.main import create_app
from feedback_shared.serve import serve

if __name__ == "__main__":
    serve("loyalty", get_settings(), create_app)
