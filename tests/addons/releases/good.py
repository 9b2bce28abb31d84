"""A release whose migration works: one row per database it ran on."""


def migrate(cr, version):
    cr.execute("INSERT INTO saas_fleet_probe (name, release) VALUES ('migrated', %s)",
               [version])
