from . import saas_fleet_probe
