def pages(items: list[int], size: int) -> list[list[int]]:
    """The items cut into pages of ``size``."""
    return [items[i : i + size] for i in range(0, len(items) - size + 1, size)]
