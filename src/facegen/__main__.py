from facegen.cli import main

raise SystemExit(main())
