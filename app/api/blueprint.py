"""The JSON API's blueprint, under ``/api``; its views register on it."""

from flask import Blueprint

api = Blueprint("api", __name__, url_prefix="/api")
