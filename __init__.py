from . import controllers
from . import models
from . import wizards
from .startup import post_load
