// petreld: the Petrel daemon. See PetreldCommand.swift and docs/operating.md.
PetreldCommand.main()
