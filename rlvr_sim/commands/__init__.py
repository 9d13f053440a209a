"""One module per `rlvr-sim` subcommand (see rlvr_sim.cli)."""
