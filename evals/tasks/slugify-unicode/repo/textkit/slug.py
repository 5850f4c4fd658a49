import re


def slugify(title: str) -> str:
    """Lowercase words of ASCII letters and digits, joined by dashes."""
    return "-".join(re.findall(r"[a-z0-9]+", title.lower()))
