"""The log redactor: secret-named fields, credential headers, our token formats and secret settings."""

from __future__ import annotations

from pathlib import Path

from deksdenflow_core.redaction import REDACTED, Redactor, is_secret_name


def test_fields_named_like_a_secret_are_redacted_but_their_ids_and_counts_are_not() -> None:
    assert is_secret_name("webhook_secret")
    assert is_secret_name("DEKSDENFLOW_API_TOKEN")
    assert is_secret_name("OPENAI_API_KEY")
    assert not is_secret_name("token_id")
    assert not is_secret_name("token_hash")
    assert not is_secret_name("PWD")  # the working directory, not a password
    assert not is_secret_name("OLDPWD")
    assert is_secret_name("DB_PWD")
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


def test_gitlab_api_token_headers_are_redacted() -> None:
    text = Redactor().text("PRIVATE-TOKEN: glpat-abcdef123456 Job-Token=cjt-0987654321")
    assert "glpat-abcdef123456" not in text
    assert "cjt-0987654321" not in text


def test_the_contents_of_secret_files_named_by_settings_are_redacted(tmp_path: Path) -> None:
    token_file = tmp_path / "github-token"
    token_file.write_text("ghp_from_a_file_0123456789\n")
    redactor = Redactor.from_environment(
        {"DEKSDENFLOW_GITHUB_TOKEN_FILE": str(token_file), "DEKSDENFLOW_GITLAB_TOKEN_FILE": "/nonexistent"}
    )
    assert redactor.text("calling with ghp_from_a_file_0123456789") == f"calling with {REDACTED}"
