from . import welcome
from . import backup
from . import login
from . import signup
from . import portal
from . import metrics
