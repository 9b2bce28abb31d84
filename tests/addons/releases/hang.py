"""A release whose migration never ends (a lock wait, an endless loop)."""

import time


def migrate(cr, version):
    time.sleep(3600)
