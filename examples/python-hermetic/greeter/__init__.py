"""Greetings in the words of greeting.ini, a file of the package that iniconfig reads.

A tiny app whose dependencies come from a hash-pinned requirements.txt, installed offline.
"""

import os

import iniconfig

WORDS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "greeting.ini")


def salutation(path=WORDS):
    """The `salutation` of the [greeting] section of the ini file at `path`."""
    config = iniconfig.IniConfig(path)
    if "greeting" not in config:
        raise ValueError("%s: no [greeting] section" % path)
    return config["greeting"].get("salutation", "Hello")


def greet(name, path=WORDS):
    """`<salutation>, <name>!`."""
    if not name.strip():
        raise ValueError("no name to greet")
    return "%s, %s!" % (salutation(path), name)
