"The `movierecs` command (and `python -m movierecs`): the app's commands, and `reproduce` from the studies, the one layer above the app."
import sys

from .app import cli

def _reproduce(argv):
    from .studies.reproduce import main
    return main(argv)

COMMANDS = {'reproduce': ('retrain every notebook experiment and write results/ (as `make reproduce`); arguments go to '
                          'python -m movierecs.studies.reproduce, see `movierecs reproduce -h`', _reproduce)}

def main(argv=None):
    "Run the `movierecs` command line: `argv` (default: sys.argv[1:])."
    return cli.main(sys.argv[1:] if argv is None else argv, more=COMMANDS)

if __name__ == '__main__': main()
