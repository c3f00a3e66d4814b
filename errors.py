"""How scripts fail: a problem with what the user gave is one line on stderr and exit status 1."""
import sys


class UserError(Exception):
    """A problem with what the user gave us: reported as one line, exit status 1."""


def run_main(main):
    """Call a script's main(); a UserError or an unhandled OSError becomes `error: ...` on stderr and
    exit status 1, Ctrl-C exit status 130, never a traceback."""
    try:
        main()
    except UserError as err:
        sys.exit(f"error: {err}")
    except OSError as err:
        where = f"{err.filename}: " if err.filename else ""
        sys.exit(f"error: {where}{err.strerror or err}")
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)
