"""The store-level command line (DESIGN §2): inbox add/list/del and
message list/get/del on a fresh db, with exact outputs and exit statuses
(0 success, 1 not found or runtime failure, 2 usage or configuration error),
version, help, and options before or after a command's arguments.

Python standard library only; every subprocess has a timeout. Each test has
its own temporary directory: the db, $HOME and the working directory (so
that no conf/mailsnare.conf and no MAILSNARE_* setting of the developer is
picked up).
"""

import os
import re
import subprocess
import tempfile
import unittest

TIMEOUT = 30


def binary():
    path = os.environ.get("MAILSNARE_BIN")
    if not path:
        here = os.path.dirname(os.path.abspath(__file__))
        path = os.path.join(here, "..", "..", "src", "mailsnare")
    return path


class CliCase(unittest.TestCase):

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="mailsnare-cli-")
        self.dir = self._tmp.name
        self.db = os.path.join(self.dir, "m.db")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSNARE_")}
        self.env["HOME"] = self.dir
        self.env.pop("XDG_DATA_HOME", None)

    def tearDown(self):
        self._tmp.cleanup()

    def run_cli(self, *args, db=True, env=None):
        """Runs mailsnare with args (plus --db at the end unless db=False);
        returns (status, stdout, stderr), output as text."""
        argv = [binary()] + list(args)
        if db:
            argv += ["--db", self.db]
        p = subprocess.run(argv, cwd=self.dir, env=env or self.env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=TIMEOUT)
        return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")

    def assert_run(self, args, status, stdout=None, stderr=None, db=True):
        code, out, err = self.run_cli(*args, db=db)
        self.assertEqual(code, status, "mailsnare %s: stdout %r stderr %r" % (args, out, err))
        if stdout is not None:
            self.assertEqual(out, stdout, "stdout of %s" % (args,))
        if stderr is not None:
            self.assertEqual(err, stderr, "stderr of %s" % (args,))
        return out, err


class InboxTest(CliCase):

    def test_add_list_del_round_trip(self):
        self.assert_run(["inbox", "list"], 0, "NAME\tPASSWORD\tMESSAGES\n", "")
        self.assert_run(["inbox", "add", "ci", "--password", "s3cret"], 0,
                        "inbox: ci\nusername: ci\npassword: s3cret\n", "")
        self.assert_run(["inbox", "add", "qa", "--password=pw2"], 0,
                        "inbox: qa\nusername: qa\npassword: pw2\n", "")
        self.assert_run(["inbox", "list"], 0,
                        "NAME\tPASSWORD\tMESSAGES\nci\ts3cret\t0\nqa\tpw2\t0\n", "")
        self.assert_run(["inbox", "del", "ci"], 0, "", "")
        self.assert_run(["inbox", "list"], 0, "NAME\tPASSWORD\tMESSAGES\nqa\tpw2\t0\n", "")
        self.assert_run(["inbox", "del", "ci"], 1, "", "mailsnare: no inbox 'ci'\n")

    def test_random_password_shape(self):
        seen = set()
        for name in ("a", "b", "c"):
            out, _ = self.assert_run(["inbox", "add", name], 0)
            m = re.fullmatch(r"inbox: (\S+)\nusername: (\S+)\npassword: ([a-z0-9]{16})\n", out)
            self.assertIsNotNone(m, out)
            self.assertEqual(m.group(1), name)
            self.assertEqual(m.group(2), name)
            seen.add(m.group(3))
        self.assertEqual(len(seen), 3, "generated passwords repeat: %r" % seen)
        out, _ = self.assert_run(["inbox", "list"], 0)
        rows = out.splitlines()[1:]
        self.assertEqual(sorted(r.split("\t")[1] for r in rows), sorted(seen))

    def test_duplicate_is_refused(self):
        self.assert_run(["inbox", "add", "ci", "--password", "one"], 0)
        self.assert_run(["inbox", "add", "ci", "--password", "two"], 1, "",
                        "mailsnare: inbox 'ci' exists\n")
        self.assert_run(["inbox", "list"], 0, "NAME\tPASSWORD\tMESSAGES\nci\tone\t0\n")

    def test_invalid_names(self):
        for name in ("a/b", "", "x" * 64, "tab\there"):
            _, err = self.assert_run(["inbox", "add", name], 2, "")
            self.assertTrue(err.startswith("mailsnare: invalid inbox name"), err)
            self.assertEqual(err.count("\n"), 1, err)
        self.assert_run(["inbox", "add", "x" * 63], 0)
        self.assert_run(["inbox", "add", "ok", "--password", ""], 2, "")

    def test_names_are_utf8_without_controls_or_edge_spaces(self):
        want = (" (want 1..63 bytes of UTF-8 without '/', control characters or spaces at "
                "either end)\n")
        for name, why in ((" lead", "leading or trailing space"),
                          ("trail ", "leading or trailing space"),
                          ("esc\x1bname", "a control character"),
                          ("c1\u0085name", "a control character"),
                          (".dot", "leading '.'")):
            with self.subTest(name=name):
                self.assert_run(["inbox", "add", name], 2, "",
                                "mailsnare: invalid inbox name '%s': %s%s" % (name, why, want))
        # Bytes that are not UTF-8 (argv as bytes).
        p = subprocess.run([binary(), "inbox", "add", b"bad\xff", "--db", self.db], cwd=self.dir,
                           env=self.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=TIMEOUT)
        self.assertEqual((p.returncode, p.stdout), (2, b""))
        self.assertEqual(p.stderr, b"mailsnare: invalid inbox name 'bad\xff': not valid UTF-8" +
                         want.encode())
        self.assert_run(["inbox", "add", "caf\u00e9 team", "--password", "p"], 0)
        self.assert_run(["inbox", "list"], 0, "NAME\tPASSWORD\tMESSAGES\ncaf\u00e9 team\tp\t0\n")

    def test_options_before_and_after_arguments(self):
        # `inbox add ci --db X` and `--db X inbox add ci` are the same.
        self.assert_run(["inbox", "add", "ci", "--db", self.db, "--password", "p"], 0, db=False)
        self.assert_run(["--db", self.db, "--password", "q", "inbox", "add", "qa"], 0, db=False)
        self.assert_run(["--db=" + self.db, "inbox", "list"], 0,
                        "NAME\tPASSWORD\tMESSAGES\nci\tp\t0\nqa\tq\t0\n", db=False)
        # A bare bool option before the command means yes, and does not eat
        # the command word.
        self.assert_run(["--smtp-require-auth", "inbox", "list"], 0)
        self.assert_run(["--smtp-require-auth", "no", "inbox", "list"], 0)

    def test_missing_and_extra_arguments(self):
        usage_add = "usage: mailsnare inbox add NAME [--password P]\n"
        self.assert_run(["inbox", "add"], 2, "", usage_add)
        self.assert_run(["inbox", "add", "a", "b"], 2, "", usage_add)
        self.assert_run(["inbox", "del"], 2, "", "usage: mailsnare inbox del NAME\n")
        self.assert_run(["inbox", "list", "x"], 2, "", "usage: mailsnare inbox list\n")
        _, err = self.assert_run(["inbox"], 2, "")
        self.assertIn("usage: mailsnare inbox add NAME", err)
        _, err = self.assert_run(["inbox", "rename"], 2, "")
        self.assertIn("usage: mailsnare inbox list", err)

    def test_store_open_failure(self):
        blocker = os.path.join(self.dir, "file")
        with open(blocker, "w") as f:
            f.write("not a directory")
        bad = os.path.join(blocker, "m.db")
        code, out, err = self.run_cli("inbox", "list", "--db", bad, db=False)
        self.assertEqual(code, 1, err)
        self.assertEqual(out, "")
        self.assertTrue(err.startswith("mailsnare: %s: " % bad), err)
        self.assertEqual(err.count("\n"), 1, err)


class MessageTest(CliCase):

    def test_list_empty_store(self):
        self.assert_run(["message", "list"], 0, "ID\tINBOX\tDATE\tFROM\tTO\tSUBJECT\n", "")
        self.assert_run(["inbox", "add", "ci"], 0)
        self.assert_run(["message", "list", "--inbox", "ci"], 0,
                        "ID\tINBOX\tDATE\tFROM\tTO\tSUBJECT\n", "")

    def test_list_unknown_inbox(self):
        self.assert_run(["message", "list", "--inbox", "nope"], 1, "",
                        "mailsnare: no inbox 'nope'\n")

    def test_get_unknown_and_invalid_ids(self):
        self.assert_run(["message", "get", "1"], 1, "", "mailsnare: no message 1\n")
        self.assert_run(["message", "get", "999999"], 1, "", "mailsnare: no message 999999\n")
        for bad in ("abc", "-1", "0", "1x", "99999999999999999999999"):
            _, err = self.assert_run(["message", "get", bad], 2, "")
            self.assertEqual(err, "mailsnare: invalid message id '%s'\n" % bad)
        self.assert_run(["message", "get"], 2, "", "usage: mailsnare message get ID\n")

    def test_del_unknown_and_invalid(self):
        usage = "usage: mailsnare message del ID | --inbox NAME --all\n"
        self.assert_run(["message", "del", "7"], 1, "", "mailsnare: no message 7\n")
        self.assert_run(["message", "del", "seven"], 2, "",
                        "mailsnare: invalid message id 'seven'\n")
        self.assert_run(["message", "del"], 2, "", usage)
        self.assert_run(["message", "del", "--inbox", "ci"], 2, "", usage)
        self.assert_run(["message", "del", "--all"], 2, "", usage)
        self.assert_run(["message", "del", "7", "--inbox", "ci", "--all"], 2, "", usage)
        self.assert_run(["message", "del", "--inbox", "nope", "--all"], 1, "",
                        "mailsnare: no inbox 'nope'\n")

    def test_del_all_of_empty_inbox(self):
        self.assert_run(["inbox", "add", "ci"], 0)
        self.assert_run(["message", "del", "--all", "--inbox", "ci"], 0, "deleted 0 messages\n", "")

    def test_subcommand_options_belong_to_their_command(self):
        self.assert_run(["message", "get", "1", "--all"], 2, "",
                        "mailsnare: unknown option '--all'\n")
        self.assert_run(["inbox", "list", "--password", "x"], 2, "",
                        "mailsnare: unknown option '--password'\n")


class GeneralTest(CliCase):

    def test_version(self):
        out, _ = self.assert_run(["version"], 0, stderr="", db=False)
        self.assertRegex(out, r"^mailsnare \d+\.\d+\.\d+\S*\n"
                         r"libevent \d+\.\d+\.\d+\S*\n"
                         r"OpenSSL \d+\.\d+\.\d+\S*( .*)?\n"
                         r"SQLite 3\.\d+\.\d+\n"
                         r"jansson \d+\.\d+(\.\d+)?\n"
                         r"zlib \d+\.\d+(\.\d+)*\S*\n$")

    def test_version_is_the_runtime_one(self):
        """The SQLite line is the loaded library's, as the sqlite3 shell
        (linked to the same libsqlite3) reports it."""
        out, _ = self.assert_run(["version"], 0, stderr="", db=False)
        try:
            shell = subprocess.run(["sqlite3", "-version"], stdout=subprocess.PIPE,
                                   stdin=subprocess.DEVNULL, timeout=TIMEOUT)
        except FileNotFoundError:
            self.skipTest("no sqlite3 shell")
        self.assertIn("SQLite %s\n" % shell.stdout.decode().split()[0], out)

    def test_help(self):
        for args in (["help"], ["--help"], ["-h"], ["--db", "x", "--help"]):
            out, _ = self.assert_run(args, 0, stderr="", db=False)
            for word in ("[serve]", "inbox add", "inbox list", "inbox del", "message list",
                         "message get", "message del", "config keys", "version", "help"):
                self.assertIn("\n  mailsnare " + word, out)

    def test_command_help(self):
        """COMMAND --help and help COMMAND: that command's usage (or its
        group's) on stdout, status 0, and nothing is run."""
        out, _ = self.assert_run(["inbox", "add", "ci", "--help"], 0, stderr="")
        self.assertEqual(out.splitlines()[:2], ["usage: mailsnare inbox add NAME [--password P]",
                                                "  create an inbox, print its credentials"])
        self.assertNotIn("inbox list", out)
        self.assertFalse(os.path.exists(self.db), "inbox add --help touched the db")
        out, _ = self.assert_run(["inbox", "--help"], 0, stderr="", db=False)
        self.assertEqual([l for l in out.splitlines() if l.startswith("usage:")],
                         ["usage: mailsnare inbox add NAME [--password P]",
                          "usage: mailsnare inbox list", "usage: mailsnare inbox del NAME"])
        out2, _ = self.assert_run(["help", "inbox"], 0, stderr="", db=False)
        self.assertEqual(out2, out)
        out, _ = self.assert_run(["serve", "--help"], 0, stderr="", db=False)
        self.assertTrue(out.startswith("usage: mailsnare [serve] [options]\n"), out)
        self.assertIn("MAILSNARE_<KEY>", out)
        out, _ = self.assert_run(["version", "-h"], 0, stderr="", db=False)
        self.assertEqual(out, "usage: mailsnare version\n"
                              "  versions: its own and its libraries'\n")
        self.assert_run(["frobnicate", "--help"], 2, "",
                        "mailsnare: unknown command 'frobnicate' (see 'mailsnare help')\n",
                        db=False)

    def test_config_keys(self):
        out, _ = self.assert_run(["config", "keys"], 0, stderr="", db=False)
        rows = [line.split("\t") for line in out.splitlines()]
        self.assertTrue(all(len(r) == 3 for r in rows), rows)
        keys = {r[0]: (r[1], r[2]) for r in rows}
        self.assertEqual(keys["smtp"], ("MAILSNARE_SMTP", "127.0.0.1:1025"))
        self.assertEqual(keys["log-level"], ("MAILSNARE_LOG_LEVEL", "info"))
        self.assertEqual(keys["db"], ("MAILSNARE_DB", ""))
        self.assertEqual(rows[0][0], "config")

    def test_unknown_option(self):
        self.assert_run(["--bogus"], 2, "", "mailsnare: unknown option '--bogus'\n", db=False)
        self.assert_run(["inbox", "list", "--smtp-port", "25"], 2, "",
                        "mailsnare: unknown option '--smtp-port'\n")
        self.assert_run(["inbox", "list", "-x"], 2, "", "mailsnare: unknown option '-x'\n")

    def test_option_without_value(self):
        self.assert_run(["inbox", "list", "--db"], 2, "",
                        "mailsnare: option '--db' needs a value\n", db=False)

    def test_unknown_command(self):
        _, err = self.assert_run(["frobnicate"], 2, "")
        self.assertEqual(err.count("\n"), 1, err)
        self.assertIn("'frobnicate'", err)

    def test_config_error_exits_2(self):
        self.assert_run(["inbox", "list", "--durability", "sometimes"], 2, "",
                        "mailsnare: --durability: invalid value 'sometimes' "
                        "(want normal or full)\n")


if __name__ == "__main__":
    unittest.main()
