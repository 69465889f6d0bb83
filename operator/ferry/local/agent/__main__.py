import sys

from ferry.local.agent.main import main

sys.exit(main())
