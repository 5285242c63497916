"""One module per `mdfd` subcommand; each defines `register(subparsers)`."""
