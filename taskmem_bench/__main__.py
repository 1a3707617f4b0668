import sys

from taskmem_bench.cli import main

sys.exit(main())
