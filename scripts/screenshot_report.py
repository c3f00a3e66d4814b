"""A PNG of a listening report (report.html, listen.html) as headless Chromium draws it: the README's
pictures are made with it from the demo's report, by the code the browser tests use (browser.py).

    python scripts/screenshot_report.py outputs/demo/results/report.html docs/report.png --height 1100
    python scripts/screenshot_report.py outputs/demo/results/report.html docs/report_phone.png --width 390 --height 844
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from browser import screenshot  # noqa: E402  (after the path above; beside this script)
from errors import ArgumentParser, UserError, run_main  # noqa: E402
from fileio import check_output_file  # noqa: E402


def main(argv=None):
    parser = ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("page", help="a report.html or listen.html")
    parser.add_argument("png", help="the picture to write")
    parser.add_argument("--width", type=int, default=1200, help="CSS pixels (a phone: 390)")
    parser.add_argument("--height", type=int, default=0, help="the top this many pixels (0: the whole page)")
    args = parser.parse_args(argv)
    if not Path(args.page).is_file():
        raise UserError(f"{args.page}: no such page (evaluate.py writes report.html, separate.py listen.html)")
    if args.width < 200 or args.height < 0:
        raise UserError("--width must be at least 200 and --height at least 0")
    check_output_file(args.png, "PNG")
    screenshot(args.page, args.png, args.width, args.height)
    print(f"wrote {args.png}")


if __name__ == "__main__":
    run_main(main)
