from bench.autoscaling.run import main

raise SystemExit(main())
