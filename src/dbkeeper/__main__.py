from dbkeeper.cli import main

raise SystemExit(main())
