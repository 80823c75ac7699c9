"""``python -m facesearch``: the same as the ``facesearch`` command."""

import sys

from facesearch.devtools.cli import main

sys.exit(main())
