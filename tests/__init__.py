from . import test_data
from . import test_instance_naming
from . import test_access
from . import test_forms
from . import test_secrets
from . import test_provisioning
from . import test_templates
from . import test_ui
