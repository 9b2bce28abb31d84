from . import saas_template_delete
from . import saas_subscription_change
from . import saas_instance_terminate
from . import saas_backup_restore
from . import saas_instance_import
from . import saas_orphan_database
from . import saas_instance_install
