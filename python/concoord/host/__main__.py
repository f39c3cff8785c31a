"""``python3 -m concoord.host module.Class``: the object host process a replica
starts for a Python class (see ``concoord.host``)."""

import sys

from . import main

sys.exit(main())
