"""``python -m jwt_wsgi`` is ``jwt-wsgi``."""

import sys

from .cli import main

sys.exit(main())
