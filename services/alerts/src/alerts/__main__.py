"""``python -m alerts``: run the alerts service."""

from alerts.config import get_settings
from alerts.main import create_app
from feedback_shared.serve import serve

if __name__ == "__main__":
    serve("alerts", get_settings(), create_app)
