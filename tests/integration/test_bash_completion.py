"""contrib/mailsnare.bash-completion, run by bash as completion runs it
(COMP_WORDS, COMP_CWORD, then COMPREPLY read back): commands,
subcommands, every config key as an option (from `mailsnare config keys`,
so keys added later complete too), and the values of a few options.
"""

import os
import shutil
import subprocess
import tempfile
import unittest

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("MAILSNARE_SRCDIR") or os.path.join(HERE, "..", "..")
SCRIPT = os.path.join(SRCDIR, "contrib", "mailsnare.bash-completion")
DRIVER = r'''
source "$1"; shift
COMP_WORDS=("$@")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
_mailsnare
printf '%s\n' "${COMPREPLY[@]}"
'''


def program_keys():
    p = subprocess.run([harness.binary(), "config", "keys"], env=harness.clean_env(),
                       stdout=subprocess.PIPE, timeout=30, check=True)
    return [line.split("\t")[0] for line in p.stdout.decode().splitlines()]


class CompletionTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        if shutil.which("bash") is None:
            raise unittest.SkipTest("no bash")
        cls.tmp = tempfile.TemporaryDirectory(prefix="mailsnare-compl-")
        for name in ("alpha.conf", "alpine.db", "beta.txt"):
            open(os.path.join(cls.tmp.name, name), "w").close()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def complete(self, *words):
        """The completions of the last word of `mailsnare words...`."""
        p = subprocess.run(["bash", "--norc", "--noprofile", "-c", DRIVER, "driver", SCRIPT,
                            os.path.abspath(harness.binary())] + list(words),
                           cwd=self.tmp.name, env=harness.clean_env(),
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stderr, b"")
        return sorted(w for w in p.stdout.decode().split("\n") if w)

    def test_commands(self):
        self.assertEqual(self.complete(""),
                         ["config", "help", "inbox", "message", "sendmail", "serve", "version"])
        self.assertEqual(self.complete("in"), ["inbox"])
        self.assertEqual(self.complete("inbox", ""), ["add", "del", "list"])
        self.assertEqual(self.complete("message", "g"), ["get"])
        self.assertEqual(self.complete("config", ""), ["keys"])
        self.assertEqual(self.complete("inbox", "list", ""), [])

    def test_options_step_over_values(self):
        # "--db x" is an option and its value, not the command.
        self.assertEqual(self.complete("--db", "/tmp/x", "message", ""),
                         ["del", "get", "list"])
        self.assertEqual(self.complete("-c", "x.conf", "inbox", "l"), ["list"])
        # A bare yes/no key takes no value: the next word is the command.
        self.assertEqual(self.complete("--smtp-require-auth", "mes"), ["message"])

    def test_every_key_is_an_option(self):
        got = self.complete("--")
        for key in program_keys():
            self.assertIn("--" + key, got)
        self.assertIn("--help", got)
        self.assertNotIn("--password", got)
        self.assertEqual(self.complete("--max-cl"), ["--max-clients"])

    def test_command_options(self):
        self.assertIn("--password", self.complete("inbox", "add", "ci", "--"))
        self.assertEqual(self.complete("message", "list", "--q"), ["--query"])
        keys_a = ["--" + k for k in program_keys() if k.startswith("a")]
        self.assertEqual(self.complete("message", "del", "--a"), sorted(["--all"] + keys_a))
        self.assertEqual(self.complete("message", "list", "--a"), sorted(keys_a))
        self.assertEqual(self.complete("message", "list", "--inb"), ["--inbox"])

    def test_values(self):
        self.assertEqual(self.complete("--log-level", ""), ["debug", "error", "info", "warn"])
        self.assertEqual(self.complete("--durability", "f"), ["full"])
        self.assertEqual(self.complete("--auth-accept-any=yes", "--db=x", "inbox", "a"), ["add"])
        self.assertEqual(self.complete("-c", "alp"), ["alpha.conf", "alpine.db"])
        self.assertEqual(self.complete("--db", "alpi"), ["alpine.db"])
        self.assertEqual(self.complete("--smtp", ""), [])


if __name__ == "__main__":
    harness.main()
