import unittest

import iniconfig

import greeter


class GreetTest(unittest.TestCase):
    def test_greets_the_name(self):
        self.assertEqual(greeter.greet("[greeting]\nname = Ada\n"), "Hello, Ada!")

    def test_takes_bytes_and_a_salutation(self):
        text = "[greeting]\nsalutation = Hi\nname = Grace\n".encode()
        self.assertEqual(greeter.greet(text), "Hi, Grace!")

    def test_a_missing_section_is_an_error(self):
        with self.assertRaisesRegex(ValueError, "no \\[greeting\\] section"):
            greeter.greet("[other]\nname = x\n", "bad.ini")

    def test_a_malformed_file_is_iniconfigs_error(self):
        with self.assertRaises(iniconfig.ParseError):
            greeter.greet("name without a section\n")


if __name__ == "__main__":
    unittest.main()
