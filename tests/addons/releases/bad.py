"""A broken release: its migration commits a change, then raises.  Committing first
leaves the database half-updated, as a real failed migration can: only restoring the
pre-update backup brings it back."""


def migrate(cr, version):
    cr.execute("INSERT INTO saas_fleet_probe (name, release) VALUES ('half-done', %s)",
               [version])
    cr.execute("UPDATE saas_fleet_probe SET release = 'broken' WHERE name = 'marker'")
    cr.commit()
    raise RuntimeError("this release is broken on purpose")
