"""The HTTP layer: Flask app factory, blueprints, auth and error mapping.

It never talks to ARI: it calls ``CallService`` only."""

from platforma_c2d.http.app import create_app

__all__ = ["create_app"]
