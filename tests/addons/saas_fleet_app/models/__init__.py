from . import saas_fleet_app
