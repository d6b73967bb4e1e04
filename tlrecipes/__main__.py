import sys

from tlrecipes.lab.cli import main

sys.exit(main())
