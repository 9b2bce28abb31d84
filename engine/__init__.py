"""saas_manager's engine: pure Python (stdlib, psycopg2, cryptography, boto3), no Odoo.

The addon's models orchestrate; the engine does the work that touches
PostgreSQL, the filestore, object storage and names.  It imports nothing from
Odoo so it is tested on its own (``standalone_tests/``) against a real
PostgreSQL (and a real S3-protocol server).
"""
