"""The ``agentq`` command: one module per command group, the only package that uses every role.

``cli.main`` assembles the groups; ``cli.support`` is what every command shares (settings, the
token, one-line errors and exit codes); ``cli.render`` is how jobs and traces look in a terminal.
"""
