from . import welcome
