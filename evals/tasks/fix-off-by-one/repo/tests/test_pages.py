from pager.pages import pages


def test_full_pages():
    assert pages([1, 2, 3, 4], 2) == [[1, 2], [3, 4]]
