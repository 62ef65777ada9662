"""`python -m plc`: run the soft PLC."""

import argparse
import sys

from plc.cli import add_arguments, main

parser = argparse.ArgumentParser(prog="python -m plc", description="edge-agent soft PLC")
add_arguments(parser)
sys.exit(main(parser.parse_args()))
