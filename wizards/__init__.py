from . import saas_template_delete
from . import saas_subscription_change
from . import saas_instance_terminate
