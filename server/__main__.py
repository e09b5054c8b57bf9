"""``python -m server``: the ``headcast`` command, for environments without the entry point."""

from server.cli import main

raise SystemExit(main())
