"""Flask extensions, created once and bound to the app in ``create_app``."""

from flask_mail import Mail
from flask_migrate import Migrate

mail = Mail()
migrate = Migrate()
