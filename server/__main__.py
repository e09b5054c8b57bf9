"""``python -m server``: the ``headcast`` command, for environments without the entry point."""

from headcast.server.cli import main

raise SystemExit(main())
