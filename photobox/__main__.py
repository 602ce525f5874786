from photobox.cli import main

raise SystemExit(main())
