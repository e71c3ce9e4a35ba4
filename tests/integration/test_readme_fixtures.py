"""README's test fixtures, run as printed: the pytest fixture (conftest.py
and test_signup.py) and the Node.js one (mail.test.mjs) are cut out of the
"HTTP API" section of README.md and run against the built server, so the
README cannot drift from what works. Each must pass as printed, leave no
inbox behind (its teardown deleted the one it made), and fail when its
assertion is made wrong (the snippet really checks the mail)."""

import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

import harness
import node_helpers
from http_helpers import request

RUN_TIMEOUT = 180
NODEMAILER = "6.9.9"

BLOCK = re.compile(r"^```(python|js)\n(.*?)^```$", re.S | re.M)
NAME = re.compile(r"^(?:#|//) ([\w.]+\.(?:py|mjs))\n")


def readme_snippets():
    """File name -> text of every fenced python/js block in README's
    "HTTP API" section whose first line is a comment naming a file."""
    src = os.environ.get("MAILSNARE_SRCDIR") or os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "..")
    with open(os.path.join(src, "README.md"), encoding="utf-8") as f:
        text = f.read()
    start = text.index("\n## HTTP API\n")
    end = text.find("\n## ", start + 1)
    section = text[start:end if end >= 0 else len(text)]
    files = {}
    for _, body in BLOCK.findall(section):
        m = NAME.match(body)
        if m:
            files[m.group(1)] = body
    return files


def node_modules_for(spec):
    """A node_modules with `spec` (name@version) installed, in a prefix of
    this test's own in the build tree: `npm install --no-save` prunes what
    it was not asked for, so sharing node_helpers' prefix would remove the
    packages other tests installed there (and race with them under -j2)."""
    if not shutil.which("node") or not shutil.which("npm"):
        raise unittest.SkipTest("node or npm not found (apt-get install nodejs npm)")
    prefix = os.path.join(os.getcwd(), "tests", "integration", "readme-node")
    name, _, version = spec.rpartition("@")
    pkg = os.path.join(prefix, "node_modules", name, "package.json")
    have = None
    if os.path.isfile(pkg):
        with open(pkg, encoding="utf-8") as f:
            have = json.load(f).get("version")
    if have != version:
        os.makedirs(prefix, exist_ok=True)
        cp = subprocess.run(["npm", "install", "--no-save", "--no-audit", "--no-fund",
                             "--no-package-lock", "--loglevel=error", "--prefix", prefix, spec],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, timeout=node_helpers.NPM_TIMEOUT)
        if cp.returncode != 0:
            raise AssertionError("npm install %s failed (status %d):\n%s"
                                 % (spec, cp.returncode,
                                    cp.stdout.decode("utf-8", "replace")[-3000:]))
    return os.path.join(prefix, "node_modules")


def have_pytest():
    cp = subprocess.run(["/usr/bin/python3", "-m", "pytest", "--version"],
                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                        stderr=subprocess.DEVNULL, timeout=60)
    return cp.returncode == 0


class ReadmeFixturesTest(harness.TestCase):
    def setUp(self):
        super().setUp()
        self.files = readme_snippets()
        self.tmp = tempfile.mkdtemp(prefix="mailsnare-readme-")
        host, port = self.server.addr("http")
        self.env = dict(harness.clean_env(), MAIL_API="http://%s:%d" % (host, port),
                        SMTP_PORT=str(self.server.addr("smtp")[1]))

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)
        super().tearDown()

    def write(self, name, text):
        with open(os.path.join(self.tmp, name), "w", encoding="utf-8") as f:
            f.write(text)

    def inboxes(self):
        r = request(self.server, "GET", "/api/v1/inboxes")
        self.assertEqual(r.status, 200, r)
        return sorted(i["Name"] for i in r.json()["inboxes"])

    def run_tool(self, args):
        cp = subprocess.run(args, cwd=self.tmp, env=self.env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            timeout=RUN_TIMEOUT)
        return cp.returncode, cp.stdout.decode("utf-8", "replace")

    def assert_cleaned_up(self, before):
        """The fixture's inbox is gone (its teardown ran) and its mail went
        there, not into dev."""
        self.assertEqual(self.inboxes(), ["dev"], "the fixture left its inbox behind")
        self.assertEqual(self.server.message_ids("dev"), before)

    def test_snippets_are_there(self):
        self.assertEqual(sorted(self.files), ["conftest.py", "mail.test.mjs", "test_signup.py"])

    def test_pytest_fixture(self):
        if not have_pytest():
            raise unittest.SkipTest("pytest not found for /usr/bin/python3 "
                                    "(apt-get install python3-pytest)")
        for name in ("conftest.py", "test_signup.py"):
            self.write(name, self.files[name])
        before = self.server.message_ids("dev")
        args = ["/usr/bin/python3", "-m", "pytest", "-q", "-p", "no:cacheprovider",
                "test_signup.py"]
        rc, out = self.run_tool(args)
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"\b1 passed\b", out)
        self.assert_cleaned_up(before)

        # The same test with an expectation the mail does not meet fails.
        self.write("test_signup.py", self.files["test_signup.py"].replace(
            '"Your code is 424242" in', '"Your code is 999999" in'))
        rc, out = self.run_tool(args)
        self.assertEqual(rc, 1, out)
        self.assertRegex(out, r"\b1 failed\b", out)
        self.assertIn("999999", out)
        self.assertEqual(self.inboxes(), ["dev"], "teardown did not run after the failure")

    def test_node_fixture(self):
        modules = node_modules_for("nodemailer@" + NODEMAILER)
        # ES modules resolve packages by directory, not NODE_PATH.
        os.symlink(modules, os.path.join(self.tmp, "node_modules"))
        self.write("mail.test.mjs", self.files["mail.test.mjs"])
        before = self.server.message_ids("dev")
        rc, out = self.run_tool(["node", "--test", "mail.test.mjs"])
        self.assertEqual(rc, 0, out)
        self.assertRegex(out, r"(?m)^# pass 1$", out)
        self.assertRegex(out, r"(?m)^# fail 0$", out)
        self.assert_cleaned_up(before)

        self.write("mail.test.mjs", self.files["mail.test.mjs"].replace(
            "/Your code is 424242/", "/Your code is 999999/"))
        rc, out = self.run_tool(["node", "--test", "mail.test.mjs"])
        self.assertNotEqual(rc, 0, out)
        self.assertRegex(out, r"(?m)^# fail 1$", out)
        self.assertEqual(self.inboxes(), ["dev"], "after() did not run after the failure")


if __name__ == "__main__":
    harness.main()
