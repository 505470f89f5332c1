import sys

from mockpoeti.cli import main

sys.exit(main())
