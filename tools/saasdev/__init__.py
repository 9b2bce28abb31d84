"""Developer tool of saas_manager: find Odoo 18, run it locally, run the tests."""
