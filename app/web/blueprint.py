"""The blueprint of the user's HTML pages; their views register on it."""

from flask import Blueprint

web = Blueprint("web", __name__, template_folder="templates")
