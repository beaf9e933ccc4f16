// petrel: the operator's CLI. See PetrelCommand.swift and docs/operating.md.
PetrelCommand.main()
