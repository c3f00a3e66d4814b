"""Headless Chromium driven by Selenium, for the listening reports' browser tests (tests/test_report.py)
and their pictures (screenshot_report.py): not part of the library, which writes pages and needs no
browser.
"""
import os
from contextlib import contextmanager
from pathlib import Path

from errors import UserError
from fileio import atomic_path

# Debian's chromium and chromium-driver, or where CHROMIUM and CHROMEDRIVER say (scripts/run_tests.sh reads them too)
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMEDRIVER = Path(os.environ.get("CHROMEDRIVER", "/usr/bin/chromedriver"))


@contextmanager
def browser(width=1200, height=900):
    """Headless Chromium (Debian's chromium and chromium-driver) driven by Selenium, logging the
    page's console, allowed to read local files (the tests decode a page's audio); one line saying
    how to install it when it is missing."""
    try:
        from selenium import webdriver
        from selenium.common.exceptions import WebDriverException
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        raise UserError("selenium is not installed: .venv/bin/pip install -r requirements.txt") from None
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        raise UserError(f"no headless browser at {CHROMIUM} and {CHROMEDRIVER}: install Debian's Chromium and "
                        f"its driver with `apt-get install -y chromium chromium-driver` (bash scripts/run_tests.sh "
                        f"does it), or set CHROMIUM and CHROMEDRIVER to where they are")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--autoplay-policy=no-user-gesture-required", f"--window-size={width},{height}",
                     "--hide-scrollbars", "--mute-audio", "--allow-file-access-from-files"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    except WebDriverException as err:
        raise UserError(f"Chromium did not start: {str(err).strip().splitlines()[0]}") from None
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(page_path, png_path, width=1200, height=0):
    """A PNG of the page as Chromium draws it at `width` CSS pixels (a phone: 390), its top `height`
    pixels (0: the whole page)."""
    def screen(driver, screen_height):
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {
            "width": width, "height": screen_height, "deviceScaleFactor": 1, "mobile": width < 600})

    with browser(width, max(height, 600)) as driver:
        screen(driver, max(height, 600))
        driver.get(Path(page_path).resolve().as_uri())
        if not height:
            height = driver.execute_script("return document.documentElement.scrollHeight")
            screen(driver, height)
        with atomic_path(png_path) as tmp:
            Path(tmp).write_bytes(driver.get_screenshot_as_png())
