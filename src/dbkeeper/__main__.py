from dbkeeper.quick import main

raise SystemExit(main())
