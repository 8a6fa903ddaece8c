import logging

from django.test import RequestFactory

from apikeys.tokens import generate_token
from core.redaction import SecretsExceptionReporterFilter, redact

TOKEN = generate_token("development")


def test_redact_tokens_and_headers() -> None:
    text = f"Authorization: Bearer {TOKEN} then gat_abcdefghij1234 and grt_zyxwvut98765"
    out = redact(text)
    assert TOKEN not in out
    assert "gat_abcdefghij1234" not in out and "grt_zyxwvut98765" not in out
    assert "gk_dev_[REDACTED]" in out or "Authorization: [REDACTED]" in out


def test_log_records_are_redacted_for_every_handler(caplog) -> None:
    logger = logging.getLogger("gatehouse.test")
    with caplog.at_level(logging.DEBUG):
        logger.info("client sent %s", TOKEN)
        logger.warning(
            "headers: %r", {"Authorization": f"ApiKey {TOKEN}", "Cookie": "sessionid=s3"}
        )
    assert TOKEN not in caplog.text
    assert "sessionid=s3" not in caplog.text
    assert "[REDACTED]" in caplog.text


def test_exception_text_is_redacted_by_the_handler_filter(capsys) -> None:
    from core.redaction import RedactSecretsFilter

    handler = logging.StreamHandler()
    handler.addFilter(RedactSecretsFilter())
    logger = logging.getLogger("gatehouse.test.exc")
    logger.addHandler(handler)
    try:
        raise ValueError(f"bad token {TOKEN}")
    except ValueError:
        logger.exception("failed")
    finally:
        logger.removeHandler(handler)
    err = capsys.readouterr().err
    assert "ValueError" in err
    assert TOKEN not in err


def test_error_reports_hide_authorization_and_cookies() -> None:
    request = RequestFactory().get(
        "/api/v1/me",
        HTTP_AUTHORIZATION=f"Bearer {TOKEN}",
        HTTP_COOKIE="sessionid=abc",
        HTTP_X_NOTE=f"leaked {TOKEN}",
    )
    meta = SecretsExceptionReporterFilter().get_safe_request_meta(request)
    assert TOKEN not in str(meta)
    assert "sessionid=abc" not in str(meta)
