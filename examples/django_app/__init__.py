"""A minimal Django project behind jwt_wsgi (see wsgi.py)."""
