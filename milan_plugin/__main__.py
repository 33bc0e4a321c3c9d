import sys

from milan_plugin.cli import main

sys.exit(main())
