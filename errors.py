"""How scripts fail: a problem with what the user gave is one line on stderr and exit status 1."""
import argparse
import sys


class UserError(Exception):
    """A problem with what the user gave us: reported as one line, exit status 1."""


def reason_of(err):
    """What went wrong, in one line, from an exception MindSpore's C++ layer raised: the line after
    its `[ERROR]` tag where it wrote one (the first line is then a generic "Exception thrown from
    dataset pipeline"), else the first non-empty line."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    tagged = [line.split("[ERROR]", 1)[1].strip() for line in lines if "[ERROR]" in line]
    return (tagged or lines or [type(err).__name__])[0]


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


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser whose errors are one UserError line instead of the whole usage block, with
    the way out when a path starting with "-" was taken for an option (argparse reads `-mix.wav`
    as an unknown option and `--out_dir -out` as an option without its value)."""

    def parse_args(self, args=None, namespace=None):
        self._argv = sys.argv[1:] if args is None else list(args)
        return super().parse_args(args, namespace)

    def error(self, message):
        dashed = [a for a in map(str, getattr(self, "_argv", [])) if a.startswith("-") and a[1:2] not in "-"
                  and a.split("=")[0] not in self._option_string_actions
                  and not self._negative_number_matcher.match(a)]
        hint = (f"; if {dashed[0]} is a path, write it as ./{dashed[0]} (or --option=PATH)" if dashed
                else "")
        raise UserError(f"{message}{hint} (see python {self.prog} --help)")
