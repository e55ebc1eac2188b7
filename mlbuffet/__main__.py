import sys

from mlbuffet.cli.main import main

sys.exit(main())
