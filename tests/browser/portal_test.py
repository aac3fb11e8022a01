"""The developer portal in a real browser: Debian's headless Chromium driven
by Selenium (chromedriver from the same packages; nothing is downloaded),
against the local stack (infra/local/stack: the gateway in front of the real
functions and the emulator).

Run by infra/local/api-tests under the stack (`make test`):

    infra/local/with-emulator infra/local/stack \
      .venv/bin/python -m unittest -v tests/browser/portal_test.py

One flow, in order, as a user takes it: open a session link from the
provider's backend, see the keys, create a key with the keyboard only (shown
once), call the API with it, see the usage chart count those calls, roll the
key, revoke it, read the audit trail and the API reference, on a desktop and
a phone-sized screen; axe-core checks each of our views, and no page may
report a Content-Security-Policy violation. Screenshots go to the test logs.
Every key, link token and session id seen is recorded for check-logs.
"""

import json
import os
import pathlib
import secrets
import time
import unittest
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

ROOT = pathlib.Path(__file__).resolve().parents[2]
LOGS = pathlib.Path(os.environ.get("KEYGATE_TEST_LOGS", ROOT / ".local" / "test-logs"))
SHOTS = LOGS / "portal-screenshots"
AXE = ROOT / "functions" / "portal" / "web" / "node_modules" / "axe-core" / "axe.min.js"
CHROMIUM = os.environ.get("KEYGATE_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("KEYGATE_CHROMEDRIVER", "/usr/bin/chromedriver")


def env(name):
    value = os.environ.get(name)
    if not value:
        raise SystemExit(f"{name} is not set: run under infra/local/stack (see the module docstring)")
    return value


def remember(kind, secret):
    """Record a secret for check-logs (keys-*.txt: API keys; secrets-*.txt: others)."""
    LOGS.mkdir(parents=True, exist_ok=True)
    with open(LOGS / f"{kind}-browser-{os.getpid()}.txt", "a") as f:
        f.write(secret + "\n")


def call(method, url, key=None, body=None, headers=None):
    """One HTTP request; returns (status, parsed JSON body or text)."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method=method)
    if key:
        req.add_header("Authorization", f"Bearer {key}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            status, text = r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


class Portal(unittest.TestCase):
    """The flow; tests run in name order and share one browser."""

    @classmethod
    def setUpClass(cls):
        cls.base = env("KEYGATE_GATEWAY_URL")
        cls.admin = pathlib.Path(env("KEYGATE_ADMIN_KEY_FILE")).read_text().strip()
        cls.owner = "acme-" + secrets.token_hex(4)
        # The provider's backend key: may open portal sessions, and holds
        # what its customers' keys may get.
        status, provider = call("POST", cls.base + "/v1/keys", cls.admin, {
            "owner": "provider", "name": "backend",
            "scopes": ["portal:create", "POST /v1/portal/sessions", "GET /v1/whoami"],
            "limits": {"quota": {"limit": 1000, "period": "day"}},
        })
        assert status == 201, provider
        remember("keys", provider["key"])
        cls.provider = provider["key"]
        cls.url = cls.open_link()
        SHOTS.mkdir(parents=True, exist_ok=True)
        opts = webdriver.ChromeOptions()
        opts.binary_location = CHROMIUM
        for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                    "--window-size=1280,1000", "--disable-gpu", "--no-first-run"]:
            opts.add_argument(arg)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        os.environ.setdefault("SE_OFFLINE", "true")
        cls.driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=opts)
        cls.driver.implicitly_wait(0)
        # The copy button writes to the clipboard; the test reads it back.
        cls.driver.execute_cdp_cmd("Browser.grantPermissions", {
            "origin": cls.base, "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"]})
        cls.console = []
        cls.keys = {}

    @classmethod
    def tearDownClass(cls):
        cls.driver.quit()

    @classmethod
    def open_link(cls):
        status, body = call("POST", cls.base + "/v1/portal/sessions", cls.provider, {
            "owner": cls.owner, "return_url": "https://app.example.com/account",
            "grants": {"scopes": ["GET /v1/whoami"],
                       "limits": {"quota": {"limit": 100, "period": "day"}}},
        })
        assert status == 201, body
        remember("secrets", body["url"].split("#t=", 1)[1])
        return body["url"]

    # ---- helpers ----

    def wait(self, predicate, timeout=20, what="condition"):
        # The page re-renders lists while loading: a row found a moment ago
        # may be replaced; look again.
        return WebDriverWait(self.driver, timeout, ignored_exceptions=[
            NoSuchElementException, StaleElementReferenceException,
        ]).until(lambda d: predicate(d), what)

    def el(self, css):
        return self.driver.find_element(By.CSS_SELECTOR, css)

    def visible(self, css, timeout=20):
        return self.wait(lambda d: d.find_element(By.CSS_SELECTOR, css).is_displayed()
                         and d.find_element(By.CSS_SELECTOR, css), timeout, css)

    def active_id(self):
        return self.driver.execute_script("return document.activeElement && document.activeElement.id")

    def shot(self, name):
        self.driver.save_screenshot(str(SHOTS / f"{name}.png"))

    def read_console(self):
        """Browser console lines so far (kept for the CSP check)."""
        lines = [e["message"] for e in self.driver.get_log("browser")]
        type(self).console.extend(lines)
        return lines

    def tab_to(self, element_id, limit=40):
        """Press Tab until `element_id` has the focus (keyboard only)."""
        body = self.driver.switch_to.active_element
        for _ in range(limit):
            if self.active_id() == element_id:
                return
            body = self.driver.switch_to.active_element
            body.send_keys(Keys.TAB)
        self.fail(f"Tab never reached #{element_id}")

    def row(self, key_id):
        return self.el(f'tr[data-key-id="{key_id}"]')

    def press(self, key_id, label):
        """Click a row's button, looking the row up again if it re-rendered."""
        def attempt(d):
            self.row(key_id).find_element(By.XPATH, f".//button[text()='{label}']").click()
            return True
        self.wait(attempt, what=f"{label} on {key_id}")

    def axe(self, exclude=None):
        """axe-core's WCAG 2 A/AA violations on the current page."""
        self.driver.execute_script(AXE.read_text())
        context = {"exclude": [[exclude]]} if exclude else None
        result = self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "axe.run(arguments[0] || document, {runOnly: ['wcag2a', 'wcag2aa']})"
            ".then(r => done(r.violations.map(v => v.id + ': ' + v.help + ' ' +"
            " v.nodes.map(n => n.target.join(' ')).join(', '))));",
            context)
        return result

    def whoami(self, key):
        return call("GET", self.base + "/v1/whoami", key)[0]

    # ---- the flow ----

    def test_01_the_link_opens_the_portal_and_sets_a_strict_cookie(self):
        self.driver.get(self.url)
        self.visible("#view-keys")
        self.assertNotIn("#t=", self.driver.current_url, "the token leaves the address bar")
        self.wait(lambda d: "no keys yet" in d.find_element(By.ID, "keys-status").text, what="empty key list")
        cookie = self.driver.get_cookie("keygate_portal")
        self.assertIsNotNone(cookie)
        remember("secrets", cookie["value"])
        self.assertTrue(cookie["httpOnly"])
        self.assertTrue(cookie["secure"])
        self.assertEqual(cookie["sameSite"], "Strict")
        self.assertEqual(cookie["path"], "/portal")
        self.assertEqual(self.driver.execute_script("return document.cookie"), "", "no script reads it")
        self.assertEqual(self.driver.execute_script("return localStorage.length + sessionStorage.length"), 0)
        self.assertIn(self.owner, self.el("#who").text)
        self.assertEqual(self.el("#back").get_attribute("href"), "https://app.example.com/account")
        self.shot("01-keys-empty")

    def test_02_create_a_key_with_the_keyboard_only(self):
        self.tab_to("create-open")
        self.driver.switch_to.active_element.send_keys(Keys.ENTER)
        self.visible("#create-dialog")
        self.assertEqual(self.active_id(), "create-name", "focus moves into the dialog")
        active = self.driver.switch_to.active_element
        active.send_keys("checkout service")
        active.send_keys(Keys.TAB)
        self.assertEqual(self.active_id(), "scope-0")
        self.driver.switch_to.active_element.send_keys(Keys.SPACE)
        self.tab_to("create-quota")
        self.driver.switch_to.active_element.send_keys("50")
        self.driver.switch_to.active_element.send_keys(Keys.ENTER)
        self.visible("#secret-dialog")
        self.assertIn("will not be shown again", self.el("#secret-warning").text)
        key = self.el("#secret-value").get_attribute("value")
        remember("keys", key)
        self.assertRegex(key, r"^[a-z][a-z0-9]{1,11}_(live|test)_[0-9A-Za-z]{49}$")
        self.shot("02-key-shown-once")
        self.tab_to("secret-copy")
        self.driver.switch_to.active_element.send_keys(Keys.ENTER)
        self.wait(lambda d: d.find_element(By.ID, "secret-copied").text != "", what="copy feedback")
        self.assertEqual(self.el("#secret-copied").text, "Copied to the clipboard.")
        copied = self.driver.execute_async_script(
            "const done = arguments[arguments.length - 1];"
            "navigator.clipboard.readText().then(done, e => done('error: ' + e));")
        self.assertEqual(copied, key, "the copy button copies the key")
        self.driver.switch_to.active_element.send_keys(Keys.ESCAPE)
        self.wait(lambda d: not d.find_element(By.ID, "secret-dialog").is_displayed(), what="dialog closed")
        self.assertEqual(self.active_id(), "create-open", "focus returns to the opener")
        self.assertEqual(self.el("#secret-value").get_attribute("value"), "", "the key leaves the page")
        self.wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#keys-table tbody tr")) == 1, what="one key")
        row = self.el("#keys-table tbody tr")
        type(self).keys["first"] = (row.get_attribute("data-key-id"), key)
        self.assertIn("checkout service", row.text)
        self.assertIn("50 / day", row.text)
        self.assertIn("active", row.text)
        self.assertEqual(self.el("#keys-status").text, "1 key.")
        self.wait(lambda d: "never" in self.row(row.get_attribute("data-key-id")).text, what="last used")
        self.assertNotIn(key, self.driver.page_source, "the key is shown once")
        self.shot("03-keys")

    def test_03_the_new_key_calls_the_api(self):
        _, key = self.keys["first"]
        for _ in range(3):
            self.assertEqual(self.whoami(key), 200)

    def test_04_the_usage_chart_counts_those_calls(self):
        key_id, _ = self.keys["first"]
        self.driver.get(self.url.split("#", 1)[0] + "#usage/" + key_id)
        deadline = time.time() + 20
        while True:
            self.wait(lambda d: d.find_element(By.ID, "usage-status").text == "Usage loaded.", what="usage")
            if "3 allowed" in self.el("#chart-summary").text or time.time() > deadline:
                break
            time.sleep(1)
            self.el("#usage-form button[type=submit]").click()
        self.assertIn("3 allowed and 0 denied", self.el("#chart-summary").text)
        canvas = self.el("#chart canvas")
        self.assertGreater(canvas.size["width"], 200)
        drawn = self.driver.execute_script(
            "const c = arguments[0]; const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;"
            "let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n;", canvas)
        self.assertGreater(drawn, 0, "the chart drew something")
        gauge = self.el("#gauges svg")
        self.assertIn("3 of 50 requests used this day", gauge.get_attribute("aria-label"))
        self.assertIn("GET /v1/whoami", self.el("#top-routes").text)
        self.shot("04-usage")

    def test_05_roll_the_key(self):
        key_id, old = self.keys["first"]
        self.driver.get(self.url.split("#", 1)[0] + "#keys")
        self.visible(f'tr[data-key-id="{key_id}"]')
        self.press(key_id, 'Roll')
        self.visible("#rotate-dialog")
        self.el("#rotate-grace option[value='0']").click()
        self.el("#rotate-form button[type=submit]").click()
        self.visible("#secret-dialog")
        new = self.el("#secret-value").get_attribute("value")
        remember("keys", new)
        self.assertNotEqual(new, old)
        self.shot("05-rolled")
        self.el("#secret-dialog [data-close]").click()
        self.wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#keys-table tbody tr")) == 2, what="two keys")
        successor = [r.get_attribute("data-key-id") for r in
                     self.driver.find_elements(By.CSS_SELECTOR, "#keys-table tbody tr")
                     if r.get_attribute("data-key-id") != key_id][0]
        type(self).keys["successor"] = (successor, new)
        self.assertEqual(self.whoami(new), 200)
        self.assertEqual(self.whoami(old), 403, "no grace: the old key stops at once")

    def test_06_revoke_the_key_after_confirming(self):
        key_id, key = self.keys["successor"]
        self.press(key_id, 'Revoke')
        self.visible("#revoke-dialog")
        self.assertEqual(self.driver.switch_to.active_element.text, "Cancel", "the safe choice has the focus")
        self.shot("06-revoke-confirm")
        self.driver.switch_to.active_element.send_keys(Keys.ENTER)  # Cancel
        self.wait(lambda d: not d.find_element(By.ID, "revoke-dialog").is_displayed(), what="cancelled")
        self.assertEqual(self.whoami(key), 200, "cancel revokes nothing")
        self.press(key_id, 'Revoke')
        self.visible("#revoke-dialog")
        self.el("#revoke-form button[type=submit]").click()
        self.wait(lambda d: "revoked" in d.find_element(By.ID, "keys-status").text, what="revoked")
        self.assertIn("revoked", self.row(key_id).text)
        self.assertEqual(self.whoami(key), 403, "the authorizer denies it")

    def test_07_the_audit_trail_names_the_portal_session(self):
        key_id, _ = self.keys["successor"]
        self.press(key_id, 'Audit')
        self.visible("#view-audit")
        self.wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#audit-table tbody tr")) >= 2, what="events")
        text = self.el("#audit-table").text
        self.assertIn("revoked", text)
        self.assertIn("portal:", text)
        self.shot("07-audit")

    def test_08_accessibility_of_our_views(self):
        for view in ["#keys", "#usage"]:
            self.driver.get(self.url.split("#", 1)[0] + view)
            self.visible("#view-" + view[1:])
            time.sleep(1)
            self.assertEqual(self.axe(), [], view)

    def test_09_the_api_reference_renders(self):
        self.driver.get(self.base + "/portal/docs.html")
        self.wait(lambda d: "/v1/portal/sessions" in d.find_element(By.ID, "swagger").text, 30, "spec rendered")
        self.assertGreater(len(self.driver.find_elements(By.CSS_SELECTOR, ".opblock")), 5)
        self.shot("08-api-reference")
        self.assertEqual(self.axe(exclude="#swagger"), [], "our parts of the docs page")

    def test_10_a_phone_sized_screen(self):
        self.driver.set_window_size(390, 844)
        try:
            self.driver.get(self.url.split("#", 1)[0] + "#keys")
            self.visible("#keys-table tbody tr")
            width = self.driver.execute_script("return document.documentElement.scrollWidth")
            self.assertLessEqual(width, 390, "no sideways scrolling")
            label = self.driver.execute_script(
                "return getComputedStyle(document.querySelector('#keys-table td'), '::before').content")
            self.assertEqual(label, '"Name"', "each cell names its column")
            self.shot("09-phone-keys")
            self.driver.get(self.url.split("#", 1)[0] + "#usage")
            self.visible("#chart canvas")
            self.shot("10-phone-usage")
        finally:
            self.driver.set_window_size(1280, 1000)

    def load(self, url):
        """Open `url` as a new document (not a fragment change of this one)."""
        self.read_console()
        self.driver.get("about:blank")
        self.driver.get(url)

    def test_11_a_used_link_shows_a_clear_page(self):
        self.load(self.url)
        self.visible("#view-error")
        self.assertEqual(self.el("#error-title").text, "This portal link is not valid")
        self.assertIn("open the portal again", self.el("#error-hint").text)
        self.shot("11-link-used")
        forged = self.base + "/portal/home#t=" + secrets.token_urlsafe(32)[:43]
        self.load(forged)
        self.visible("#view-error")
        self.assertEqual(self.el("#error-title").text, "This portal link is not valid")
        self.assertNotIn("#t=", self.driver.current_url)

    def test_12_sign_out_ends_the_session(self):
        cookie = self.driver.get_cookie("keygate_portal")["value"]
        self.load(self.url.split("#", 1)[0] + "#keys")
        self.visible("#view-keys")
        self.el("#sign-out").click()
        self.visible("#view-error")
        self.assertEqual(self.el("#error-title").text, "You are not signed in")
        status, body = call("GET", self.base + "/portal/api/keys",
                            headers={"Cookie": f"keygate_portal={cookie}"})
        self.assertEqual((status, body["error"]["code"]), (401, "session_required"))
        self.shot("12-signed-out")

    def test_13_a_fresh_link_after_sign_out_works_again(self):
        self.load(self.open_link())
        self.visible("#view-keys")
        self.wait(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#keys-table tbody tr")) == 2, what="both keys")
        remember("secrets", self.driver.get_cookie("keygate_portal")["value"])

    def test_99_no_page_reported_a_csp_violation(self):
        lines = self.read_console()
        csp = [l for l in type(self).console if "Content Security Policy" in l or "Refused to" in l]
        self.assertEqual(csp, [])
        errors = [l for l in lines if "SEVERE" in l and "401" not in l]
        (LOGS / "portal-browser-console.txt").write_text("\n".join(type(self).console))
        self.assertEqual(errors, [], "no script errors")


if __name__ == "__main__":
    unittest.main(verbosity=2)
