from textkit import slugify


def test_accents_are_transliterated():
    assert slugify("Crème brûlée") == "creme-brulee"
    assert slugify("Ångström über Café") == "angstrom-uber-cafe"


def test_blank_is_empty():
    assert slugify("   ") == ""
