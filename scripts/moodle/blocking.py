"""Run a kit script with every cookie of the tool blocked inside Moodle's page:
python blocking.py SCRIPT.py ARGS..."""

import os
import runpy
import sys

sys.path.insert(0, os.environ.get("K", "../shared/lms/moodle-scripts"))
import common  # noqa: E402

_Options = common.webdriver.ChromeOptions


class BlockingOptions(_Options):
    def __init__(self):
        super().__init__()
        self.add_experimental_option(
            "prefs",
            {
                "profile.cookie_controls_mode": 1,
                "profile.content_settings.exceptions.cookies": {
                    f"{common.TOOL_URL},{common.MOODLE_URL}": {"setting": 2}
                },
            },
        )


common.webdriver.ChromeOptions = BlockingOptions
script = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
