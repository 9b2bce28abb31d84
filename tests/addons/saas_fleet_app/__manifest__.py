{
    "name": "SaaS Fleet App",
    "version": "18.0.1.0.0",
    "summary": "Test addon of saas_manager's app installs and template revision upgrades",
    "author": "saas_manager developers",
    "website": "https://github.com/saas-manager/saas_manager",
    "license": "LGPL-3",
    "depends": ["base"],
    "data": ["security/ir.model.access.csv"],
    "installable": True,
}
