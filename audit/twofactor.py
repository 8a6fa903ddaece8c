"""Two-factor sign-in (SPEC §12): an authenticator app (TOTP, RFC 6238) on django-otp's device
base, and ten single-use recovery codes. Enrolment, removal and each recovery code used are on the
workspace-less audit chain; secrets and codes never are (nor in logs or the database in clear).

The TOTP secret is sealed with Fernet under a key derived from `GATEHOUSE_OTP_KEY`; a recovery
code is stored as its SHA-256 digest. The code arithmetic is django-otp's (`django_otp.oath.TOTP`),
and so is the per-device back-off after wrong codes (`ThrottlingMixin`).
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from typing import TYPE_CHECKING
from urllib.parse import quote, urlencode

from cryptography.fernet import Fernet
from django.conf import settings
from django.db import transaction
from django_otp.models import Device
from django_otp.oath import TOTP

from core.context import Actor, RequestContext

from .models import RecoveryCode, RecoveryCodeDevice, TotpDevice
from .services import audit_record

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser

ISSUER = "Gatehouse"
SECRET_BYTES = 20  # RFC 4226 §4: 160 bits, what authenticator apps expect for SHA-1
RECOVERY_CODE_COUNT = 10
TOLERANCE_STEPS = 1  # one 30 s step either side, for clocks a little apart
_CODE_CHARS = re.compile(r"[\s-]")
_TOTP_SHAPE = re.compile(r"\d{6}")
_RECOVERY_SHAPE = re.compile(r"[a-z2-7]{16}")


def _fernet() -> Fernet:
    digest = hashlib.sha256(b"gatehouse-totp-seal:" + settings.GATEHOUSE_OTP_KEY.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def totp_secret(device: TotpDevice) -> bytes:
    return _fernet().decrypt(device.sealed_secret.encode())


def totp_secret_base32(device: TotpDevice) -> str:
    """The secret as an authenticator app takes it typed in (RFC 4648 base32, no padding)."""
    return base64.b32encode(totp_secret(device)).decode().rstrip("=")


def totp_config_uri(device: TotpDevice) -> str:
    """The `otpauth://` URI the QR code carries (Google Authenticator's key URI format)."""
    label = quote(f"{ISSUER}:{device.user.get_username()}")
    query = urlencode({"secret": totp_secret_base32(device), "issuer": ISSUER,
                       "algorithm": "SHA1", "digits": 6, "period": 30})
    return f"otpauth://totp/{label}?{query}"


def two_factor_enabled(user: AbstractBaseUser) -> bool:
    return TotpDevice.objects.filter(user=user, confirmed=True).exists()


def _normalized(code: str) -> str:
    """The code as typed, without spaces or dashes, lower case; '' when it cannot be a code."""
    code = _CODE_CHARS.sub("", str(code or "")[:64]).lower()
    return code if _TOTP_SHAPE.fullmatch(code) or _RECOVERY_SHAPE.fullmatch(code) else ""


def _digest(code: str) -> str:
    return hashlib.sha256(b"gatehouse-recovery:" + code.encode()).hexdigest()


def _new_recovery_code() -> str:
    return base64.b32encode(secrets.token_bytes(10)).decode().lower()  # 16 chars, 80 bits


def recovery_code_display(code: str) -> str:
    return "-".join(code[i:i + 4] for i in range(0, len(code), 4))


def _totp_verify(device: TotpDevice, code: str) -> bool:
    """django-otp's TOTPDevice.verify_token, on the sealed secret: a code is accepted once (its
    time step must be after the last accepted one) and wrong codes back the device off."""
    allowed, _ = device.verify_is_allowed()
    if not allowed:
        return False
    totp = TOTP(totp_secret(device), 30, 0, 6, device.drift)
    totp.time = time.time()
    if _TOTP_SHAPE.fullmatch(code) and totp.verify(int(code), TOLERANCE_STEPS, device.last_t + 1):
        device.last_t, device.drift = totp.t(), totp.drift
        device.throttle_reset(commit=False)
        device.set_last_used_timestamp(commit=False)
        device.save()
        return True
    device.throttle_increment(commit=True)
    return False


def _recovery_codes_replace(user: AbstractBaseUser) -> list[str]:
    device, _ = RecoveryCodeDevice.objects.get_or_create(
        user=user, defaults={"name": "Recovery codes"}
    )
    device.codes.all().delete()
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    RecoveryCode.objects.bulk_create(RecoveryCode(device=device, digest=_digest(c)) for c in codes)
    device.throttle_reset()
    return [recovery_code_display(c) for c in codes]


def _audit_user(action: str, user: AbstractBaseUser, *, actor: Actor, context: RequestContext,
                metadata: dict | None = None) -> None:
    audit_record(action=action, actor=actor, target_type="user", target_id=str(user.pk),
                 target_label=user.get_username(), context=context, metadata=metadata)


# --- Services -----------------------------------------------------------------------------------

def totp_enrolment_start(*, user: AbstractBaseUser, actor: Actor, context: RequestContext
                         ) -> TotpDevice:
    """A new, unconfirmed authenticator for `user` with a fresh secret (an earlier unconfirmed
    one is dropped). Nothing changes for sign-in until it is confirmed with a code."""
    with transaction.atomic():
        TotpDevice.objects.filter(user=user, confirmed=False).delete()
        sealed = _fernet().encrypt(secrets.token_bytes(SECRET_BYTES)).decode()
        return TotpDevice.objects.create(user=user, name="Authenticator app", confirmed=False,
                                         sealed_secret=sealed)


def totp_enrolment_pending(user: AbstractBaseUser) -> TotpDevice | None:
    return TotpDevice.objects.filter(user=user, confirmed=False).select_related("user").first()


def totp_enrolment_confirm(*, device: TotpDevice, code: str, actor: Actor, context: RequestContext
                           ) -> list[str] | None:
    """Turn two-factor on when `code` is right for the new secret: the device becomes the user's
    one authenticator and ten new recovery codes are made. Returns them (shown once), or None for
    a wrong code. Records `user.two_factor_enabled`."""
    with transaction.atomic():
        device = TotpDevice.objects.select_for_update().get(pk=device.pk, confirmed=False)
        if not _totp_verify(device, _normalized(code)):
            return None
        TotpDevice.objects.filter(user=device.user, confirmed=True).delete()
        device.confirmed = True
        device.save(update_fields=["confirmed"])
        codes = _recovery_codes_replace(device.user)
        _audit_user("user.two_factor_enabled", device.user, actor=actor, context=context,
                    metadata={"method": "totp"})
    return codes


def two_factor_disable(*, user: AbstractBaseUser, actor: Actor, context: RequestContext) -> bool:
    """Remove the authenticator and the recovery codes. Records `user.two_factor_disabled`;
    False (nothing recorded) when two-factor was not on."""
    with transaction.atomic():
        deleted, _ = TotpDevice.objects.filter(user=user).delete()
        RecoveryCodeDevice.objects.filter(user=user).delete()
        if deleted:
            _audit_user("user.two_factor_disabled", user, actor=actor, context=context)
    return bool(deleted)


def recovery_codes_regenerate(*, user: AbstractBaseUser, actor: Actor, context: RequestContext
                              ) -> list[str]:
    """Ten new recovery codes; the old ones stop working. Records
    `user.recovery_codes_regenerated`."""
    with transaction.atomic():
        codes = _recovery_codes_replace(user)
        _audit_user("user.recovery_codes_regenerated", user, actor=actor, context=context)
    return codes


def second_factor_verify(*, user: AbstractBaseUser, code: str, actor: Actor,
                         context: RequestContext) -> Device | None:
    """The device that accepts `code` for `user` — the authenticator for six digits, else one of
    the recovery codes, which is used up (`user.recovery_code_used`, with how many are left) —
    or None. Devices are locked while checking, so two requests cannot both spend one code."""
    code = _normalized(code)
    if not code:
        return None
    with transaction.atomic():
        if _TOTP_SHAPE.fullmatch(code):
            device = (TotpDevice.objects.select_for_update()
                      .filter(user=user, confirmed=True).first())
            return device if device is not None and _totp_verify(device, code) else None
        device = RecoveryCodeDevice.objects.select_for_update().filter(user=user).first()
        if device is None or not device.verify_is_allowed()[0]:
            return None
        used, _ = device.codes.filter(digest=_digest(code)).delete()
        if not used:
            device.throttle_increment()
            return None
        device.throttle_reset(commit=False)
        device.save()
        _audit_user("user.recovery_code_used", user, actor=actor, context=context,
                    metadata={"remaining": device.codes.count()})
    return device


def recovery_codes_remaining(user: AbstractBaseUser) -> int:
    return RecoveryCode.objects.filter(device__user=user).count()
