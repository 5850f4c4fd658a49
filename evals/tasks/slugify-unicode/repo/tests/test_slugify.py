from textkit import slugify


def test_ascii_titles():
    assert slugify("Hello, World!") == "hello-world"
    assert slugify("  Add   login page ") == "add-login-page"
