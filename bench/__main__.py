"""``python -m bench``: the in-process benchmark (see ``bench/README.md``)."""

from bench.micro import main

raise SystemExit(main())
