import argparse
import sys

from milan_plugin.bench import add_benchmark_parsers

parser = argparse.ArgumentParser(prog="python -m milan_plugin.bench")
add_benchmark_parsers(parser)
arguments = parser.parse_args()
sys.exit(int(arguments.func(arguments) or 0))
