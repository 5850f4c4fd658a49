"""The log redactor: secret-named fields, credential headers, our token formats and secret settings."""

from __future__ import annotations

from deksdenflow_core.redaction import REDACTED, Redactor, is_secret_name


def test_fields_named_like_a_secret_are_redacted_but_their_ids_and_counts_are_not() -> None:
    assert is_secret_name("webhook_secret")
    assert is_secret_name("DEKSDENFLOW_API_TOKEN")
    assert is_secret_name("OPENAI_API_KEY")
    assert not is_secret_name("token_id")
    assert not is_secret_name("token_hash")
    event = Redactor()(
        None,
        "info",
        {
            "event": "e",
            "password": "hunter2hunter2",
            "token_id": "t1",
            "input_tokens": 12,
            "nested": {"key": "k" * 20},
        },
    )
    assert event == {
        "event": "e",
        "password": REDACTED,
        "token_id": "t1",
        "input_tokens": 12,
        "nested": {"key": REDACTED},
    }


def test_credentials_in_any_text_are_redacted() -> None:
    redactor = Redactor(["the-admin-token-value"])
    text = redactor.text(
        "headers=[(b'authorization', b'Bearer abcdefgh12345'), (b'x-gitlab-token', b'glsecret123')] "
        "X-Hub-Signature-256: sha256=0123abcd webhook-signature=v1,c2VjcmV0 dfp_abcdefghijklmnopqrst "
        "dfw_0123456789abcdef0123 https://user:pw@host/x?private_token=abc123 the-admin-token-value"
    )
    for secret in (
        "abcdefgh12345",
        "glsecret123",
        "0123abcd",
        "c2VjcmV0",
        "abcdefghijklmnopqrst",
        "pw@",
        "abc123",
    ):
        assert secret not in text, text
    assert "the-admin-token-value" not in text


def test_the_values_of_secret_settings_in_the_environment_are_redacted() -> None:
    redactor = Redactor.from_environment(
        {"DEKSDENFLOW_API_TOKEN": "first-token-1,second-token-2", "HOME": "/root"}
    )
    assert redactor.text("got first-token-1 and second-token-2 in /root") == (
        f"got {REDACTED} and {REDACTED} in /root"
    )
