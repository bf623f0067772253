"""``python -m loyalty``: run the loyalty service."""

from feedback_shared.serve import serve
from loyalty.config import get_settings
from loyalty.main import create_app

if __name__ == "__main__":
    serve("loyalty", get_settings(), create_app)
