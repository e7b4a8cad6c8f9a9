from bpfobj.cli.main import main

raise SystemExit(main())
