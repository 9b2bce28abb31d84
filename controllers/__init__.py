from . import welcome
from . import backup
