"""One module per `edge-agent` subcommand: add_arguments(parser) and main(args) -> exit code."""
