"""``python -m brainsim.bench``: the same as ``brainsim bench``."""

import sys

from brainsim.bench import main

sys.exit(main())
