"""deeplink.py with every cookie of the tool blocked inside Moodle's page (as Safari or "block all
third-party cookies" would): the picker offers a new window; the item must still reach the form."""

import os
import re
import sys
import time

sys.path.insert(0, os.environ.get("K", "../shared/lms/moodle-scripts"))
import common  # noqa: E402
from common import (
    EC,
    MOODLE_URL,
    TEACHER,
    TOOL_URL,
    By,
    body_text,
    driver,
    login,
    open_chooser,
    severe_console,
    shot,
    wait,
)  # noqa: E402

_Options = common.webdriver.ChromeOptions


class BlockingOptions(_Options):
    def __init__(self):
        super().__init__()
        self.add_experimental_option(
            "prefs",
            {
                "profile.cookie_controls_mode": 1,
                "profile.content_settings.exceptions.cookies": {
                    f"{TOOL_URL},{MOODLE_URL}": {"setting": 2}
                },
            },
        )


common.webdriver.ChromeOptions = BlockingOptions
tool, item = sys.argv[1], sys.argv[2]
d = driver()
try:
    login(d, *TEACHER)
    entries = open_chooser(d)
    d.get(entries[tool])
    select = wait(d, EC.presence_of_element_located((By.ID, "id_selectcontent")))
    d.execute_script("arguments[0].click()", select)
    main_window = d.current_window_handle
    frame = wait(d, EC.presence_of_element_located((By.CSS_SELECTOR, ".modal iframe")), 30)
    d.switch_to.frame(frame)
    button = wait(d, EC.element_to_be_clickable((By.ID, "lti1p3-new-tab-link")), 60)
    print("frame:", body_text(d, 200))
    shot(d, "nw-cookie-page")
    before = set(d.window_handles)
    button.click()
    wait(d, lambda x: set(x.window_handles) - before, 20)
    d.switch_to.window((set(d.window_handles) - before).pop())
    wait(d, EC.element_to_be_clickable((By.CSS_SELECTOR, f"input[name=item][value='{item}']")), 60)
    print("new window:", d.current_url[:100])
    d.find_element(By.CSS_SELECTOR, f"input[name=item][value='{item}']").click()
    d.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    time.sleep(2)
    try:
        print("new window after the pick:", body_text(d, 200))
        for err in severe_console(d):
            print("console (new window):", err)
    except Exception as exc:  # closed itself
        print("new window gone:", type(exc).__name__)
    d.switch_to.window(main_window)
    d.switch_to.default_content()
    wait(
        d,
        lambda x: (
            not [m for m in x.find_elements(By.CSS_SELECTOR, ".modal iframe") if m.is_displayed()]
            and x.find_element(By.ID, "id_name").get_attribute("value")
        ),
        60,
    )
    print(
        "form after Deep Linking:",
        d.find_element(By.ID, "id_name").get_attribute("value"),
        d.find_element(By.ID, "id_instructorcustomparameters").get_attribute("value"),
    )
    shot(d, "nw-form")
    d.execute_script("arguments[0].click()", d.find_element(By.ID, "id_submitbutton"))
    wait(d, lambda x: "/mod/lti/view.php" in x.current_url, 60)
    print("CMID=" + re.search(r"id=(\d+)", d.current_url).group(1))
    print("windows left:", len(d.window_handles))
finally:
    d.quit()
