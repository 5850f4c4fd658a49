from pager.pages import pages


def test_a_partial_last_page_is_kept():
    assert pages([1, 2, 3], 2) == [[1, 2], [3]]


def test_no_items_no_pages():
    assert pages([], 3) == []
