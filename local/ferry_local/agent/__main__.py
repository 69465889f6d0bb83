import sys

from ferry_local.agent.main import main

sys.exit(main())
