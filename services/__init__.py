"""newsflow's stages, one package each, and the `newsflow` command."""
