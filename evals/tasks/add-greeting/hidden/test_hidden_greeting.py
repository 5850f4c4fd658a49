def test_greet_says_hello():
    from sample.greeting import greet

    assert greet("Ada") == "Hello, Ada!"


def test_greet_is_exported():
    import sample

    assert sample.greet("Bob") == "Hello, Bob!"
