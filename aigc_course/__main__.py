"""``python -m aigc_course`` runs the command line."""

from aigc_course.cli import main

raise SystemExit(main())
