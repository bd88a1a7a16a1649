"""python3 -m greeter FILE: prints the greeting FILE's [greeting] section asks for."""

import sys

import greeter

if len(sys.argv) != 2:
    sys.exit("usage: python3 -m greeter FILE")
with open(sys.argv[1], "rb") as file:
    print(greeter.greet(file.read(), sys.argv[1]))
