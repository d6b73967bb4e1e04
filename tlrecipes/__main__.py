import sys

from tlrecipes.cli import main

sys.exit(main())
