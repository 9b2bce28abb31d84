"""The one exception type the developer tool shows to a person.

Every expected failure (no Odoo, wrong version, busy port, PostgreSQL refusing
the role, ...) is raised as :class:`ToolError` with a message that fits on one
line (or one paragraph when the person has to act), and the CLI prints it
without a traceback.
"""


class ToolError(Exception):
    """An expected failure, explained in plain words; exit status 2 by default."""

    def __init__(self, message, status=2):
        super().__init__(message)
        self.status = status
