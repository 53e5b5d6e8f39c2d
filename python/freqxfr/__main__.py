from freqxfr.cli import main

raise SystemExit(main())
