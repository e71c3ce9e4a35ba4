"""Configuration as a user meets it (DESIGN §2): a bad key or value in the
config file, the environment or a flag stops `mailsnare serve` before it
starts, with exit status 2 and one line naming the key and where it came
from; and a running server shows the precedence flag > environment > file
> default (listeners in its ready file, SIZE and the greeting over SMTP,
declared inboxes in the store).

Python standard library only; every subprocess and socket has a timeout.
Each test runs in its own temporary directory (db, $HOME, working
directory), without the caller's MAILSNARE_* variables.
"""

import os
import re
import signal
import smtplib
import subprocess
import tempfile
import time
import unittest

CLI_TIMEOUT = 30
READY_TIMEOUT = 10
STOP_TIMEOUT = 10
LISTENERS = ("smtp", "smtps", "pop3", "pop3s", "imap", "imaps", "http")
HERE = os.path.dirname(os.path.abspath(__file__))


def binary():
    return os.environ.get("MAILSNARE_BIN") or os.path.join(HERE, "..", "..", "src", "mailsnare")


def sample_conf():
    srcdir = os.environ.get("MAILSNARE_SRCDIR") or os.path.join(HERE, "..", "..")
    return os.path.join(srcdir, "conf", "mailsnare.conf")


class ConfigCase(unittest.TestCase):

    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory(prefix="mailsnare-config-")
        self.dir = self._tmp.name
        self.db = os.path.join(self.dir, "m.db")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("MAILSNARE_")}
        self.env["HOME"] = self.dir
        self.env.pop("XDG_DATA_HOME", None)
        self.proc = None

    def tearDown(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=STOP_TIMEOUT)
        self._tmp.cleanup()

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return path

    def run_cli(self, args, env=None):
        env = dict(self.env, **(env or {}))
        p = subprocess.run([binary()] + args, cwd=self.dir, env=env, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=CLI_TIMEOUT)
        return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")

    def assert_config_error(self, args, want, env=None):
        """`serve` with a bad configuration: exit 2, nothing on stdout, and
        exactly the one line `want` on stderr."""
        code, out, err = self.run_cli(["serve", "--db", self.db] + args, env)
        self.assertEqual(code, 2, "stdout %r stderr %r" % (out, err))
        self.assertEqual(out, "")
        self.assertEqual(err, "mailsnare: " + want + "\n")
        self.assertFalse(os.path.exists(self.db), "a bad config must stop before the store")


class BadConfigTest(ConfigCase):

    def test_unknown_key_in_file(self):
        conf = self.write("bad.conf", "# comment\n\nsmtp = off\nsmtp-port = 25\n")
        self.assert_config_error(["-c", conf], "%s:4: unknown key 'smtp-port'" % conf)

    def test_bad_value_in_file(self):
        conf = self.write("bad.conf", "max-message-size = 10 MB\n")
        self.assert_config_error(
            ["--config", conf],
            "%s:1: max-message-size: invalid size '10 MB' (want a number with optional "
            "K, M or G)" % conf)

    def test_bad_section_in_file(self):
        conf = self.write("bad.conf", "[inbox ci]\npassword = x\nsmtp = off\n")
        self.assert_config_error(["-c", conf],
                                 "%s:3: unknown key 'smtp' in [inbox ci] (only password)" % conf)

    def test_default_file_in_working_directory(self):
        self.write("conf/mailsnare.conf", "\nlog-level = chatty\n")
        self.assert_config_error(
            [], "conf/mailsnare.conf:2: log-level: invalid value 'chatty' "
                "(want debug, info, warn, warning or error)")

    def test_config_file_from_environment(self):
        conf = self.write("env.conf", "durability = sometimes\n")
        self.assert_config_error([], "%s:1: durability: invalid value 'sometimes' "
                                     "(want normal or full)" % conf,
                                 env={"MAILSNARE_CONFIG": conf})

    def test_named_file_missing(self):
        missing = os.path.join(self.dir, "nope.conf")
        self.assert_config_error(["-c", missing], "-c: cannot open '%s': No such file or "
                                                  "directory" % missing)
        self.assert_config_error([], "MAILSNARE_CONFIG: cannot open '%s': No such file or "
                                     "directory" % missing, env={"MAILSNARE_CONFIG": missing})

    def test_bad_value_in_environment(self):
        self.assert_config_error([], "MAILSNARE_SMTP: invalid address 'nonsense' "
                                     "(want host:port or off)",
                                 env={"MAILSNARE_SMTP": "nonsense"})
        self.assert_config_error([], "MAILSNARE_MAX_CLIENTS: invalid number 'many'",
                                 env={"MAILSNARE_MAX_CLIENTS": "many"})
        self.assert_config_error([], "MAILSNARE_AUTH_ACCEPT_ANY: invalid boolean 'maybe' "
                                     "(want yes or no)",
                                 env={"MAILSNARE_AUTH_ACCEPT_ANY": "maybe"})

    def test_bad_flag_value(self):
        self.assert_config_error(["--max-clients", "many"], "--max-clients: invalid number 'many'")
        self.assert_config_error(["--smtp=[::1]"], "--smtp: invalid address '[::1]' "
                                                   "(want host:port or off)")
        self.assert_config_error(["--smtp-require-auth=perhaps"],
                                 "--smtp-require-auth: invalid boolean 'perhaps' (want yes or no)")
        self.assert_config_error(["--inbox", "nopassword"],
                                 "--inbox: invalid inbox 'nopassword' (want NAME:PASSWORD)")

    def test_unknown_flag(self):
        code, out, err = self.run_cli(["serve", "--db", self.db, "--smtp-port", "25"])
        self.assertEqual((code, out, err), (2, "", "mailsnare: unknown option '--smtp-port'\n"))

    def test_flag_error_wins_over_nothing_else(self):
        # A valid file and environment do not hide a bad flag.
        conf = self.write("ok.conf", "smtp = off\n")
        self.assert_config_error(["-c", conf, "--http", "8025"],
                                 "--http: invalid address '8025' (want host:port or off)",
                                 env={"MAILSNARE_IMAP": "off"})


class SmallOnesTest(ConfigCase):
    """Issue 11's small ones: files that are no config file, keys that come
    in pairs, the new limit keys, and a database of another program."""

    def test_not_a_text_file(self):
        self.assert_config_error(["-c", "/dev/zero"],
                                 "/dev/zero:1: NUL byte 0x00: not a text file")
        conf = os.path.join(self.dir, "nul.conf")
        with open(conf, "wb") as f:
            f.write(b"smtp = off\n# fine\nhostname = a\0b\n")
        self.assert_config_error(["-c", conf], "%s:3: NUL byte 0x00: not a text file" % conf)

    def test_tls_cert_and_key_come_together(self):
        self.assert_config_error(["--tls-key", os.path.join(self.dir, "k.pem")],
                                 "tls-cert: missing (tls-key is set: give both or neither)")
        conf = self.write("tls.conf", "tls-cert = /etc/c.pem\n")
        self.assert_config_error(["-c", conf],
                                 "tls-key: missing (tls-cert is set: give both or neither)")
        self.assert_config_error([], "tls-key: missing (tls-cert is set: give both or neither)",
                                 env={"MAILSNARE_TLS_CERT": "/etc/c.pem"})

    def test_limit_keys_name_themselves(self):
        self.assert_config_error(["--max-keywords", "0"],
                                 "--max-keywords: 0 out of range (want 1..100000)")
        self.assert_config_error(["--max-mailboxes=many"], "--max-mailboxes: invalid number 'many'")
        self.assert_config_error([], "MAILSNARE_AUTH_FAIL_LIMIT: invalid number '-5'",
                                 env={"MAILSNARE_AUTH_FAIL_LIMIT": "-5"})
        conf = self.write("caps.conf", "max-subscriptions = 10k\n")
        self.assert_config_error(["-c", conf],
                                 "%s:1: max-subscriptions: invalid number '10k'" % conf)

    def test_bad_bool_after_a_bare_flag_names_the_key(self):
        self.assert_config_error(["--auth-accept-any", "maybe"],
                                 "--auth-accept-any: invalid boolean 'maybe' (want yes or no)")

    def test_inbox_names_in_the_config(self):
        conf = self.write("names.conf", '[inbox " ci"]\npassword = x\n')
        self.assert_config_error(["-c", conf], "%s:1: inbox: invalid inbox name ' ci' "
                                               "(leading or trailing space)" % conf)
        self.assert_config_error(["--inbox", "a\u0085b:pw"],
                                 "--inbox: invalid inbox name 'a\u0085b' (a control character)")

    def foreign_db(self, sql):
        import sqlite3
        path = os.path.join(self.dir, "foreign.db")
        con = sqlite3.connect(path)
        con.executescript(sql)
        con.commit()
        con.close()
        with open(path, "rb") as f:
            return path, f.read()

    def test_foreign_sqlite_db_is_refused(self):
        for sql, why in (("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);",
                          "not a mailsnare database (it has tables of another program)"),
                         ("PRAGMA application_id = 1234; PRAGMA user_version = 3;",
                          "not a mailsnare database (application_id 1234)")):
            with self.subTest(why=why):
                path, before = self.foreign_db(sql)
                code, out, err = self.run_cli(["inbox", "list", "--db", path])
                self.assertEqual((code, out), (1, ""), err)
                self.assertTrue(err.startswith("mailsnare: %s: " % path), err)
                self.assertTrue(err.endswith(": %s\n" % why), err)
                self.assertEqual(err.count("\n"), 1, err)
                code, out, err = self.run_cli(["serve", "--db", path, "--smtp", "off"])
                self.assertEqual(code, 1, err)
                self.assertTrue(err.endswith(": %s\n" % why), err)
                with open(path, "rb") as f:
                    self.assertEqual(f.read(), before, "the foreign file was changed")
                os.unlink(path)

    def test_older_mailsnare_db_still_opens(self):
        import sqlite3
        db = os.path.join(self.dir, "old.db")
        code, _, err = self.run_cli(["inbox", "add", "ci", "--password", "p", "--db", db])
        self.assertEqual(code, 0, err)
        # As a database made before the application_id was set.
        con = sqlite3.connect(db)
        con.execute("PRAGMA application_id = 0")
        con.commit()
        con.close()
        code, out, err = self.run_cli(["inbox", "list", "--db", db])
        self.assertEqual(code, 0, err)
        self.assertIn("ci\tp\t0\n", out)
        con = sqlite3.connect(db)
        app = con.execute("PRAGMA application_id").fetchone()[0]
        con.close()
        self.assertEqual(app, 0x4d534e52, "marked as ours once opened")


class SampleConfigTest(ConfigCase):
    """conf/mailsnare.conf documents every key at its default: as shipped
    and with every setting uncommented it must load."""

    def sample(self):
        path = sample_conf()
        if not os.path.exists(path):
            self.skipTest("no sample config at %s" % path)
        with open(path, encoding="utf-8") as f:
            return f.read()

    def test_sample_loads_as_is(self):
        conf = self.write("sample.conf", self.sample())
        code, out, err = self.run_cli(["inbox", "list", "-c", conf, "--db", self.db])
        self.assertEqual(code, 0, err)

    def test_sample_loads_uncommented(self):
        text = self.sample()
        # "#key = value" and "#[inbox ...]" are settings; "# text" is prose.
        uncommented = re.sub(r"(?m)^#(?=[a-z\[])", "", text)
        self.assertNotEqual(uncommented, text)
        keys = set(re.findall(r"(?m)^([a-z0-9-]+) =", uncommented))
        for key in ("db", "tls-cert", "tls-key", "smtp-require-auth", "auth-accept-any",
                    "allow-plaintext-auth", "max-message-size", "max-messages", "max-clients",
                    "smtp-timeout", "durability", "log-level", "ready-file",
                    "hostname") + LISTENERS:
            self.assertIn(key, keys, "sample config lacks key %r" % key)
        self.assertIn("[inbox ci]", uncommented)
        conf = self.write("sample.conf", uncommented)
        code, out, err = self.run_cli(["inbox", "list", "-c", conf, "--db", self.db])
        self.assertEqual(code, 0, err)


class ServerPrecedenceTest(ConfigCase):
    """Needs `serve`: the server is started on port 0 listeners and shows
    which source won through its ready file, SMTP and the store."""

    def start(self, args=(), env=None, ready_flag=True):
        self.ready = os.path.join(self.dir, "ready")
        argv = [binary(), "serve", "--db", self.db] + list(args)
        if ready_flag:
            argv += ["--ready-file", self.ready]
        self.proc = subprocess.Popen(argv, cwd=self.dir, env=dict(self.env, **(env or {})),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                out, err = self.proc.communicate(timeout=STOP_TIMEOUT)
                self.fail("serve exited with %s before ready: %r %r"
                          % (self.proc.returncode, out, err))
            if os.path.exists(self.ready):
                with open(self.ready, encoding="utf-8") as f:
                    return self.parse_ready(f.read())
            time.sleep(0.05)
        self.fail("no ready file after %d s" % READY_TIMEOUT)

    @staticmethod
    def parse_ready(text):
        addrs = {}
        for line in text.splitlines():
            proto, addr = line.split()
            host, port = addr.rsplit(":", 1)
            addrs[proto] = (host.strip("[]"), int(port))
        return addrs

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            out, err = self.proc.communicate(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.communicate(timeout=STOP_TIMEOUT)
            self.fail("serve did not stop within %d s of SIGTERM" % STOP_TIMEOUT)
        self.assertEqual(self.proc.returncode, 0, err)
        return out.decode("utf-8", "replace"), err.decode("utf-8", "replace")

    def inboxes(self):
        code, out, err = self.run_cli(["inbox", "list", "--db", self.db])
        self.assertEqual(code, 0, err)
        return dict(tuple(row.split("\t")[:2]) for row in out.splitlines()[1:])

    def listener_conf(self):
        """A file with smtp off, smtps on, and the rest off."""
        return self.write("m.conf", "".join(
            "%s = %s\n" % (name, "127.0.0.1:0" if name == "smtps" else "off")
            for name in LISTENERS))

    def test_listeners_env_over_file(self):
        env = {"MAILSNARE_SMTP": "127.0.0.1:0",   # file says off
               "MAILSNARE_SMTPS": "off"}          # file says on
        addrs = self.start(["-c", self.listener_conf()], env)
        self.stop()
        self.assertEqual(sorted(addrs), ["smtp"])
        host, port = addrs["smtp"]
        self.assertEqual(host, "127.0.0.1")
        self.assertGreater(port, 0)

    def test_listeners_flag_over_env(self):
        env = {"MAILSNARE_SMTP": "127.0.0.1:0", "MAILSNARE_SMTPS": "off"}
        addrs = self.start(["-c", self.listener_conf(), "--smtp", "off",
                            "--smtps=127.0.0.1:0"], env)
        self.stop()
        self.assertEqual(sorted(addrs), ["smtps"])

    def all_off_but_smtp(self):
        return ["--" + name + "=" + ("127.0.0.1:0" if name == "smtp" else "off")
                for name in LISTENERS]

    def ehlo(self, addr):
        """(SIZE parameter, first line of the EHLO reply: the server's name)."""
        with smtplib.SMTP(*addr, local_hostname="client.test", timeout=15) as smtp:
            code, _ = smtp.ehlo()
            self.assertEqual(code, 250)
            return smtp.esmtp_features.get("size"), smtp.ehlo_resp.decode().split("\n")[0]

    def test_size_and_hostname_precedence(self):
        conf = self.write("m.conf", "max-message-size = 1M\nhostname = file.test\n")
        addrs = self.start(["-c", conf] + self.all_off_but_smtp(),
                           {"MAILSNARE_MAX_MESSAGE_SIZE": "2M",
                            "MAILSNARE_HOSTNAME": "env.test"})
        size, first = self.ehlo(addrs["smtp"])
        self.stop()
        self.assertEqual(size, str(2 * 1024 * 1024), "env over file")
        self.assertTrue(first.startswith("env.test"), first)

        if os.path.exists(self.ready):
            os.unlink(self.ready)
        addrs = self.start(["-c", conf, "--max-message-size=3M", "--hostname", "flag.test"]
                           + self.all_off_but_smtp(),
                           {"MAILSNARE_MAX_MESSAGE_SIZE": "2M",
                            "MAILSNARE_HOSTNAME": "env.test"})
        size, first = self.ehlo(addrs["smtp"])
        self.stop()
        self.assertEqual(size, str(3 * 1024 * 1024), "flag over env")
        self.assertTrue(first.startswith("flag.test"), first)

    def test_inboxes_merge_across_sources(self):
        conf = self.write("m.conf", "[inbox fromfile]\npassword = f\n"
                                    "[inbox shared]\npassword = file\n")
        self.start(["-c", conf, "--inbox", "fromflag:x", "--inbox=shared:flag"]
                   + self.all_off_but_smtp(),
                   {"MAILSNARE_INBOX": "fromenv:e,shared:env"})
        self.stop()
        got = self.inboxes()
        self.assertEqual(got.get("fromfile"), "f")
        self.assertEqual(got.get("fromenv"), "e")
        self.assertEqual(got.get("fromflag"), "x")
        self.assertEqual(got.get("shared"), "flag")

    def test_ready_file_from_config_file(self):
        self.ready = os.path.join(self.dir, "ready")
        conf = self.write("m.conf", 'ready-file = "%s"\n' % self.ready)
        addrs = self.start(["-c", conf] + self.all_off_but_smtp(), ready_flag=False)
        self.stop()
        self.assertEqual(sorted(addrs), ["smtp"])


if __name__ == "__main__":
    unittest.main()
