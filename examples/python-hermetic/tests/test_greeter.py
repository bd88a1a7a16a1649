import iniconfig
import pytest

import greeter


def test_greets_the_name_with_the_packages_salutation():
    assert greeter.greet("Ada") == "Hello, Ada!"


def test_the_salutation_comes_from_the_ini_file(tmp_path):
    words = tmp_path / "greeting.ini"
    words.write_text("[greeting]\nsalutation = Hi\n")
    assert greeter.greet("Grace", str(words)) == "Hi, Grace!"


@pytest.mark.parametrize(
    "text, error",
    [("[other]\nsalutation = Hi\n", ValueError), ("no section\n", iniconfig.ParseError)],
)
def test_a_file_without_a_greeting_is_an_error(tmp_path, text, error):
    words = tmp_path / "greeting.ini"
    words.write_text(text)
    with pytest.raises(error):
        greeter.greet("Ada", str(words))


def test_no_name_is_an_error():
    with pytest.raises(ValueError, match="no name"):
        greeter.greet("  ")
