"""``python -m doubles.mcp_server``: how the tests, the demo and the benchmark start it."""

import sys

from doubles.mcp_server.cli import main

sys.exit(main())
