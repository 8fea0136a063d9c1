import sys

from eventbus.consumer.replay.cli import main

sys.exit(main())
