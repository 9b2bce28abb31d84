"""Standalone tests: real PostgreSQL, no Odoo.

``./dev test`` runs them with libpq's ``PG*`` variables pointing at its
PostgreSQL.  The addon package itself imports Odoo, so the engine is imported
as a top-level package from the repository root, and the developer tool from
``tools/``.
"""

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "tools"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))


@pytest.fixture(scope="session")
def pg_env():
    """libpq settings of the test server; the suite cannot run without one."""
    env = {k: v for k, v in os.environ.items() if k.startswith("PG")}
    if not env.get("PGHOST"):
        pytest.fail("PGHOST is not set: run the suite through ./dev test")
    return env
