"""python3 -m greeter NAME: prints the greeting for NAME."""

import sys

import greeter

if len(sys.argv) != 2:
    sys.exit("usage: python3 -m greeter NAME")
try:
    print(greeter.greet(sys.argv[1]))
except ValueError as error:
    sys.exit("greeter: %s" % error)
