import sys

from acoustemo.cli import main

sys.exit(main())
