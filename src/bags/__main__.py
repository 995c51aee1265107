from bags.cli import main

raise SystemExit(main())
