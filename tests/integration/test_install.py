"""make install / make uninstall of the build tree under test, into a
DESTDIR, with prefix, sysconfdir, localstatedir and the unit directory
given on make's command line: every file lands where they say; the sample
config is not written over one already there, and uninstall leaves a
changed one (and the state directory while it holds anything) alone;
otherwise nothing is left behind.
"""

import filecmp
import os
import shutil
import subprocess
import tempfile
import unittest

import harness

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.environ.get("MAILSNARE_SRCDIR") or os.path.join(HERE, "..", "..")
BUILDDIR = os.path.dirname(os.path.dirname(os.path.abspath(harness.binary())))
DIRS = {
    "prefix": "/opt/ms",
    "sysconfdir": "/etc/opt/ms",
    "localstatedir": "/var/opt/ms",
    "systemdsystemunitdir": "/usr/lib/systemd/system",
}
FILES = [
    "/opt/ms/bin/mailsnare",
    "/etc/opt/ms/mailsnare/mailsnare.conf",
    "/opt/ms/share/man/man1/mailsnare.1",
    "/opt/ms/share/man/man5/mailsnare.conf.5",
    "/opt/ms/share/bash-completion/completions/mailsnare",
    "/usr/lib/systemd/system/mailsnare.service",
]


def files_under(root):
    out = set()
    for d, _, names in os.walk(root):
        out.update(os.path.relpath(os.path.join(d, n), root) for n in names)
    return out


class InstallTest(unittest.TestCase):

    def setUp(self):
        if shutil.which("make") is None:
            self.skipTest("no make")
        if not os.path.exists(os.path.join(BUILDDIR, "Makefile")):
            self.skipTest("the binary is not in a configured build tree")
        tmp = tempfile.TemporaryDirectory(prefix="mailsnare-install-")
        self.addCleanup(tmp.cleanup)
        self.dest = tmp.name

    def make(self, target):
        # A make of its own: not the jobs of the make check around it.
        env = {k: v for k, v in harness.clean_env().items()
               if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")}
        args = ["make", "-s", "-C", BUILDDIR, target, "DESTDIR=" + self.dest]
        args += ["%s=%s" % kv for kv in DIRS.items()]
        p = subprocess.run(args, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=300)
        self.assertEqual(p.returncode, 0, p.stdout.decode("utf-8", "replace"))
        return p.stdout.decode("utf-8", "replace")

    def path(self, p):
        return self.dest + p

    def test_install_and_uninstall(self):
        self.make("install")
        for f in FILES:
            self.assertTrue(os.path.isfile(self.path(f)), "not installed: " + f)
        self.assertTrue(os.access(self.path(FILES[0]), os.X_OK))
        self.assertTrue(os.path.isdir(self.path("/var/opt/ms/lib/mailsnare")))
        self.assertTrue(filecmp.cmp(self.path(FILES[1]),
                                    os.path.join(SRCDIR, "conf", "mailsnare.conf"), False))
        with open(self.path(FILES[5]), encoding="utf-8") as f:
            unit = f.read()
        self.assertIn("\nExecStart=/opt/ms/bin/mailsnare serve -c "
                      "/etc/opt/ms/mailsnare/mailsnare.conf\n", unit)
        p = subprocess.run([self.path(FILES[0]), "version"], stdout=subprocess.PIPE,
                           timeout=30)
        self.assertEqual(p.returncode, 0)
        self.assertTrue(p.stdout.startswith(b"mailsnare "), p.stdout)

        # The admin's config survives a second install and the uninstall.
        conf = self.path(FILES[1])
        with open(conf, "w", encoding="utf-8") as f:
            f.write("smtp = 127.0.0.1:2525\n")
        out = self.make("install")
        self.assertIn("keeping", out)
        with open(conf, encoding="utf-8") as f:
            self.assertEqual(f.read(), "smtp = 127.0.0.1:2525\n")
        # So does mail in the state directory.
        db = self.path("/var/opt/ms/lib/mailsnare/mailsnare.db")
        open(db, "w").close()
        out = self.make("uninstall")
        self.assertIn("changed since it was installed", out)
        self.assertEqual(files_under(self.dest),
                         {"etc/opt/ms/mailsnare/mailsnare.conf",
                          "var/opt/ms/lib/mailsnare/mailsnare.db"})

        # The sample unchanged and an empty state directory go.
        shutil.copyfile(os.path.join(SRCDIR, "conf", "mailsnare.conf"), conf)
        os.unlink(db)
        self.make("uninstall")
        self.assertEqual(files_under(self.dest), set())
        self.assertFalse(os.path.exists(self.path("/etc/opt/ms/mailsnare")))
        self.assertFalse(os.path.exists(self.path("/var/opt/ms/lib/mailsnare")))


if __name__ == "__main__":
    harness.main()
