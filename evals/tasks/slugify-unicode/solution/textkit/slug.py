import re
import unicodedata


def slugify(title: str) -> str:
    """Lowercase words of ASCII letters and digits, joined by dashes; accents are transliterated."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    return "-".join(re.findall(r"[a-z0-9]+", ascii_title.lower()))
