{
    "name": "SaaS Fleet Probe",
    "version": "18.0.1.0.0",
    "summary": "Test addon of saas_manager's fleet updates: each release the tests make runs "
               "a migration",
    "author": "saas_manager developers",
    "website": "https://github.com/saas-manager/saas_manager",
    "license": "LGPL-3",
    "depends": ["base"],
    "data": ["security/ir.model.access.csv", "data/saas_fleet_probe_data.xml"],
    "installable": True,
}
