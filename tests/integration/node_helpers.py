"""Node.js clients from npm for the integration tests (imapflow,
mailpit-api): installed once with `npm install --no-save` into
tests/integration/node_modules of the source tree (or of the build tree
when the source tree is read-only). The tests skip, saying why, when node
or npm is missing; contrib/dev.sh installs both, so in CI nothing skips."""

import json
import os
import shutil
import subprocess
import unittest

import harness

NPM_TIMEOUT = 300


def node_prefix():
    """Where the packages are (or will be) installed."""
    src = os.environ.get("MAILSNARE_SRCDIR")
    if src:
        d = os.path.join(src, "tests", "integration")
        if os.access(d, os.W_OK):
            return d
    return os.path.join(os.getcwd(), "tests", "integration")


def ensure_package(name, version=None, prefix=None):
    """The NODE_PATH to use for package `name` (at `version` if given);
    raises SkipTest without node or npm. `prefix`: a folder of its own
    (another test's `npm install --no-save` prunes what it did not ask for)."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        raise unittest.SkipTest("%s test skipped: %s not found (install Node.js and npm, "
                                "e.g. apt-get install nodejs npm)"
                                % (name, " and ".join(n for n, p in (("node", node), ("npm", npm))
                                                      if not p)))
    prefix = prefix or node_prefix()
    modules = os.path.join(prefix, "node_modules")
    pkg = os.path.join(modules, name, "package.json")
    have = None
    if os.path.isfile(pkg):
        with open(pkg, encoding="utf-8") as f:
            have = json.load(f).get("version")
    if have is None or (version and have != version):
        os.makedirs(prefix, exist_ok=True)
        spec = "%s@%s" % (name, version) if version else name
        cp = subprocess.run([npm, "install", "--no-save", "--no-audit", "--no-fund",
                             "--no-package-lock", "--loglevel=error", "--prefix", prefix,
                             spec],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, timeout=NPM_TIMEOUT)
        if cp.returncode != 0:
            raise AssertionError("npm install %s failed (status %d):\n%s"
                                 % (spec, cp.returncode,
                                    cp.stdout.decode("utf-8", "replace")[-3000:]))
    return modules


def run_script(path, node_path, arg, timeout):
    """Runs `node path arg` and returns the JSON object of its last stdout
    line; fails with its output when it exits non-zero or prints no JSON."""
    env = dict(harness.clean_env(), NODE_PATH=node_path)
    cp = subprocess.run(["node", path, arg], env=env, stdin=subprocess.DEVNULL,
                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    lines = cp.stdout.decode("utf-8", "replace").splitlines()
    try:
        last = json.loads(lines[-1]) if lines else None
    except ValueError:
        last = None
    if cp.returncode != 0 or not isinstance(last, dict):
        raise AssertionError("node script failed (status %d): %s\nstderr: %s"
                             % (cp.returncode, "\n".join(lines[-20:]),
                                cp.stderr.decode("utf-8", "replace")[-3000:]))
    return last
