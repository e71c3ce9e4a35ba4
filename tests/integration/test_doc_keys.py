"""The configuration keys are documented everywhere they are listed, and
nowhere a key is documented that the program lacks: the program's own
table (`mailsnare config keys`) against mailsnare.conf(5), conf/mailsnare.conf
and README's Configuration section. Each failure names the key and the
document to fix.

Generic on purpose: a new key in src/config.c fails this test until it has
a ".TP" / ".B key" entry in doc/mailsnare.conf.5 (with its environment
variable and its default), a "#key = default" line in conf/mailsnare.conf
and a row in README's table.
"""

import os
import re
import subprocess
import unittest

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("MAILSNARE_SRCDIR") or os.path.join(HERE, "..", "..")
# Keys a config file must not hold (src/config.c refuses them there).
NOT_IN_FILE = {"config"}
SIZE_SHIFT = {"K": 10, "M": 20, "G": 30}


def read(rel):
    with open(os.path.join(SRCDIR, rel), encoding="utf-8") as f:
        return f.read()


def program_keys():
    """{key: (environment variable, default or "")} from the binary."""
    p = subprocess.run([harness.binary(), "config", "keys"], env=harness.clean_env(),
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=30)
    if p.returncode != 0:
        raise AssertionError("mailsnare config keys: status %d: %r"
                             % (p.returncode, p.stderr))
    keys = {}
    for line in p.stdout.decode().splitlines():
        name, env, default = line.split("\t")
        keys[name] = (env, default)
    return keys


def roff_text(s):
    """Roff source to plain text, enough to find words in it."""
    s = re.sub(r"\\f[BIRP]", "", s)
    s = s.replace("\\-", "-").replace("\\e", "\\").replace("\\&", "")
    s = re.sub(r"\\\(\w\w", "", s)
    s = re.sub(r"^\.(B|I|BR|RB|IR|RI|BI|IB)\s+", "", s, flags=re.M)
    return s.replace('"', "")


def man_entries():
    """{key: text} of the ".TP" / ".B key" entries under KEYS."""
    src = read("doc/mailsnare.conf.5")
    m = re.search(r"^\.SH KEYS\n(.*?)(?=^\.SH )", src, re.S | re.M)
    if m is None:
        raise AssertionError("doc/mailsnare.conf.5: no KEYS section")
    entries = {}
    for part in re.split(r"^\.TP\n", m.group(1), flags=re.M)[1:]:
        head, _, body = part.partition("\n")
        hm = re.fullmatch(r"\.B ([a-z0-9\\-]+)", head)
        if hm is None:
            raise AssertionError("doc/mailsnare.conf.5: an entry without '.B key': %r" % head)
        entries[hm.group(1).replace("\\-", "-")] = roff_text(body)
    return entries


def conf_keys():
    """{key: value} of the "#key = value" lines of conf/mailsnare.conf, and
    "inbox" for an "[inbox NAME]" section (its password line is the
    section's, not a key)."""
    keys = {}
    in_section = False
    for line in read("conf/mailsnare.conf").splitlines():
        body = line.lstrip("#").strip()
        if re.match(r"\[inbox\s", body):
            keys["inbox"] = ""
            in_section = True
            continue
        m = re.fullmatch(r"([a-z][a-z0-9-]*)\s*=\s*(.*)", body)
        if m and not (in_section and m.group(1) == "password"):
            keys[m.group(1)] = m.group(2)
    return keys


def readme_keys():
    """Every `key` in the first column of README's Configuration table."""
    text = read("README.md")
    m = re.search(r"^## Configuration\n(.*?)(?=^## )", text, re.S | re.M)
    if m is None:
        raise AssertionError("README.md: no '## Configuration' section")
    keys = set()
    for line in m.group(1).splitlines():
        if line.startswith("| `"):
            first = line.split("|")[1]
            keys.update(re.findall(r"`([a-z][a-z0-9-]*)`", first))
    return keys


def same_value(documented, default):
    """A sample value against the built-in default: quotes off, and a size
    suffix (32M) worth the bytes it stands for."""
    v = documented
    if len(v) >= 2 and v[0] == v[-1] and v[0] in "\"'":
        v = v[1:-1]
    m = re.fullmatch(r"(\d+)([KMG])", v, re.I)
    if m and default.isdigit():
        return int(m.group(1)) << SIZE_SHIFT[m.group(2).upper()] == int(default)
    return v == default


class DocKeysTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.keys = program_keys()

    def test_table_is_not_empty(self):
        for key in ("db", "smtp", "inbox", "config"):
            self.assertIn(key, self.keys)
        self.assertEqual(self.keys["smtp"], ("MAILSNARE_SMTP", "127.0.0.1:1025"))
        self.assertEqual(self.keys["max-clients"], ("MAILSNARE_MAX_CLIENTS", "1024"))

    def no_problems(self, problems):
        if problems:
            self.fail("\n" + "\n".join(problems))

    def set_problems(self, documented, where, exempt=()):
        code = set(self.keys) - set(exempt)
        missing = sorted(code - set(documented))
        extra = sorted(set(documented) - set(self.keys))
        problems = ["key %s: missing from %s" % (k, where) for k in missing]
        return problems + ["key %s: in %s but not a key of the program" % (k, where)
                           for k in extra]

    def test_man_page(self):
        entries = man_entries()
        problems = self.set_problems(entries, "doc/mailsnare.conf.5")
        for key, (env, default) in sorted(self.keys.items()):
            text = entries.get(key, "")
            if not re.search(r"\b%s\b" % re.escape(env), text):
                problems.append("key %s: doc/mailsnare.conf.5 does not name %s" % (key, env))
            if default and not re.search(r"Default:\s*%s\b" % re.escape(default), text,
                                         re.S):
                problems.append("key %s: doc/mailsnare.conf.5 does not give its default "
                                "'Default: %s'" % (key, default))
        self.no_problems(problems)

    def test_sample_config(self):
        conf = conf_keys()
        problems = self.set_problems(conf, "conf/mailsnare.conf", NOT_IN_FILE)
        problems += ["key %s: conf/mailsnare.conf says %s, the built-in default is %s"
                    % (k, conf[k], self.keys[k][1])
                    for k in sorted(conf) if k in self.keys and self.keys[k][1]
                    and not same_value(conf[k], self.keys[k][1])]
        self.no_problems(problems)

    def test_readme(self):
        self.no_problems(self.set_problems(readme_keys(), "README.md's Configuration table"))

    def test_parsers_can_fail(self):
        """The checks see a key that is missing: a test that cannot fail
        proves nothing."""
        self.assertNotIn("no-such-key", man_entries())
        self.assertTrue(same_value("32M", "33554432"))
        self.assertFalse(same_value("31M", "33554432"))
        self.assertTrue(same_value('""', ""))
        self.assertEqual(self.set_problems(set(self.keys) - {"smtp"}, "a document"),
                         ["key smtp: missing from a document"])
        self.assertEqual(self.set_problems(set(self.keys) | {"bogus"}, "a document"),
                         ["key bogus: in a document but not a key of the program"])


if __name__ == "__main__":
    harness.main()
