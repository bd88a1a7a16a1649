"""Greetings from an ini file: iniconfig reads it, six turns bytes into text.

A tiny project whose two dependencies come from a hashed requirements.txt, installed offline.
"""

import iniconfig
import six


def load(text, path="greeter.ini"):
    """The [greeting] section of an ini text (str or UTF-8 bytes) as a dict."""
    config = iniconfig.IniConfig(path, data=six.ensure_str(text))
    if "greeting" not in config:
        raise ValueError("%s: no [greeting] section" % path)
    return dict(config["greeting"].items())


def greet(text, path="greeter.ini"):
    """`<salutation>, <name>!` from the [greeting] section; the salutation defaults to Hello."""
    section = load(text, path)
    if "name" not in section:
        raise ValueError("%s: [greeting] has no name" % path)
    return "%s, %s!" % (section.get("salutation", "Hello"), section["name"])
