#!/usr/bin/env python
"""Django's command line for the example project: ``python examples/django_app/manage.py migrate``."""

import os
import sys

if __name__ == "__main__":
    # Importable as examples.django_app from the repository root, wherever this is run from.
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_app.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
