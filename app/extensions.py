"""Flask extensions, created once and bound to the app in ``create_app``."""

from flask_mail import Mail
from flask_migrate import Migrate
from flask_wtf.csrf import CSRFProtect

mail = Mail()
migrate = Migrate()
csrf = CSRFProtect()
